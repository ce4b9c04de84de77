/*
 * i8042 keyboard controller: enough for Linux's probe (self-tests, the
 * command byte, port tests, keyboard reset/ID/LEDs), an output-buffer
 * queue feeding IRQ 1 / IRQ 12, and the system reset through command 0xfe
 * (any pulse command with bit 0 clear) or output-port bit 0.  No mouse is
 * attached: commands sent to the aux device are answered with 0xfe.
 */
#include <stdlib.h>

#include "core/core.h"
#include "hw/hw.h"

#define QUEUE_SIZE 16
#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08
#define ST_UNLOCKED 0x10
#define ST_AUX 0x20
#define CB_KBD_INT 0x01
#define CB_AUX_INT 0x02
#define CB_SYS 0x04
#define CB_KBD_DISABLE 0x10
#define CB_AUX_DISABLE 0x20

struct i8042 {
	struct irq irq1, irq12, reset;
	uint8_t q[QUEUE_SIZE];
	bool q_aux[QUEUE_SIZE];
	unsigned q_head, q_count;
	uint8_t cmd_byte, outport, status_cmd;
	uint8_t pending_ctrl; /* controller command waiting for a data byte */
	uint8_t pending_kbd;  /* keyboard command waiting for a parameter */
	bool irq1_level, irq12_level;
};

static void kbc_update(struct i8042 *k)
{
	bool obf = k->q_count > 0, aux = obf && k->q_aux[k->q_head];
	bool l1 = obf && !aux && (k->cmd_byte & CB_KBD_INT);
	bool l12 = obf && aux && (k->cmd_byte & CB_AUX_INT);
	if (l1 != k->irq1_level) {
		k->irq1_level = l1;
		irq_set(&k->irq1, l1);
	}
	if (l12 != k->irq12_level) {
		k->irq12_level = l12;
		irq_set(&k->irq12, l12);
	}
}

static void kbc_push(struct i8042 *k, uint8_t v, bool aux)
{
	if (k->q_count == QUEUE_SIZE)
		return;
	unsigned i = (k->q_head + k->q_count) % QUEUE_SIZE;
	k->q[i] = v;
	k->q_aux[i] = aux;
	k->q_count++;
	kbc_update(k);
}

void i8042_kbd_put(struct i8042 *k, uint8_t code)
{
	if (!(k->cmd_byte & CB_KBD_DISABLE))
		kbc_push(k, code, false);
}

static void kbd_command(struct i8042 *k, uint8_t v)
{
	if (k->pending_kbd) {
		uint8_t cmd = k->pending_kbd;
		k->pending_kbd = 0;
		kbc_push(k, 0xfa, false); /* parameter acknowledged */
		if (cmd == 0xf0 && v == 0) /* get scan code set: 2, as translated */
			kbc_push(k, (k->cmd_byte & 0x40) ? 0x41 : 0x02, false);
		return;
	}
	switch (v) {
	case 0xff: /* reset */
		kbc_push(k, 0xfa, false);
		kbc_push(k, 0xaa, false);
		break;
	case 0xf2: /* identify: MF2 keyboard */
		kbc_push(k, 0xfa, false);
		kbc_push(k, 0xab, false);
		kbc_push(k, 0x83, false);
		break;
	case 0xee: /* echo */
		kbc_push(k, 0xee, false);
		break;
	case 0xed: /* LEDs */
	case 0xf3: /* typematic rate */
	case 0xf0: /* scan code set */
		k->pending_kbd = v;
		kbc_push(k, 0xfa, false);
		break;
	default: /* enable, disable, defaults, ... */
		kbc_push(k, 0xfa, false);
		break;
	}
}

static void kbc_write_outport(struct i8042 *k, uint8_t v)
{
	k->outport = v;
	if (!(v & 1))
		irq_pulse(&k->reset);
}

static void kbc_controller_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_ctrl;
	k->pending_ctrl = 0;
	switch (cmd) {
	case 0x60:
		k->cmd_byte = v;
		kbc_update(k);
		break;
	case 0xd1:
		kbc_write_outport(k, v);
		break;
	case 0xd2:
		kbc_push(k, v, false);
		break;
	case 0xd3:
		kbc_push(k, v, true);
		break;
	case 0xd4:
		kbc_push(k, 0xfe, true); /* no aux device: resend */
		break;
	}
}

static void kbc_command(struct i8042 *k, uint8_t v)
{
	switch (v) {
	case 0x20:
		kbc_push(k, k->cmd_byte, false);
		break;
	case 0x60: case 0xd1: case 0xd2: case 0xd3: case 0xd4:
		k->pending_ctrl = v;
		break;
	case 0xa7:
		k->cmd_byte |= CB_AUX_DISABLE;
		break;
	case 0xa8:
		k->cmd_byte &= ~CB_AUX_DISABLE;
		break;
	case 0xa9: /* aux interface test */
	case 0xab: /* keyboard interface test */
		kbc_push(k, 0x00, false);
		break;
	case 0xaa: /* controller self-test */
		k->cmd_byte |= CB_SYS;
		kbc_push(k, 0x55, false);
		break;
	case 0xad:
		k->cmd_byte |= CB_KBD_DISABLE;
		break;
	case 0xae:
		k->cmd_byte &= ~CB_KBD_DISABLE;
		break;
	case 0xc0: /* input port */
		kbc_push(k, 0x80, false);
		break;
	case 0xd0:
		kbc_push(k, k->outport, false);
		break;
	default:
		if (v >= 0xf0 && !(v & 1)) /* pulse output bit 0: reset */
			irq_pulse(&k->reset);
		break;
	}
}

static uint64_t kbc_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	struct i8042 *k = opaque;
	if (off == 4) {
		uint8_t st = ST_UNLOCKED | k->status_cmd;
		if (k->cmd_byte & CB_SYS)
			st |= ST_SYS;
		if (k->q_count) {
			st |= ST_OBF;
			if (k->q_aux[k->q_head])
				st |= ST_AUX;
		}
		return st;
	}
	if (off != 0)
		return 0xff;
	if (!k->q_count)
		return k->q[(k->q_head + QUEUE_SIZE - 1) % QUEUE_SIZE]; /* last byte again */
	uint8_t v = k->q[k->q_head];
	k->q_head = (k->q_head + 1) % QUEUE_SIZE;
	k->q_count--;
	/* a pulse so that the next byte makes a fresh edge */
	if (k->irq1_level) {
		k->irq1_level = false;
		irq_lower(&k->irq1);
	}
	if (k->irq12_level) {
		k->irq12_level = false;
		irq_lower(&k->irq12);
	}
	kbc_update(k);
	return v;
}

static void kbc_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)size;
	struct i8042 *k = opaque;
	if (off == 4) {
		k->status_cmd = ST_CMD;
		kbc_command(k, (uint8_t)v);
	} else if (off == 0) {
		k->status_cmd = 0;
		if (k->pending_ctrl)
			kbc_controller_data(k, (uint8_t)v);
		else
			kbd_command(k, (uint8_t)v);
	}
}

static uint64_t kbc_status_read(void *opaque, uint64_t off, unsigned size)
{
	(void)off;
	return kbc_read(opaque, 4, size);
}

static void kbc_cmd_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	(void)off;
	kbc_write(opaque, 4, size, v);
}

static const struct bus_dev_ops kbc_data_ops = { kbc_read, kbc_write };
static const struct bus_dev_ops kbc_cmd_ops = { kbc_status_read, kbc_cmd_write };

struct i8042 *i8042_new(struct irq irq1, struct irq irq12, struct irq reset)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->irq1 = irq1;
	k->irq12 = irq12;
	k->reset = reset;
	k->cmd_byte = CB_KBD_INT | CB_AUX_INT | CB_SYS | 0x40; /* translate */
	k->outport = 0x03;				       /* no reset, A20 on */
	return k;
}

void i8042_free(struct i8042 *k)
{
	free(k);
}

int i8042_map(struct i8042 *k, struct pio_bus *bus)
{
	int ret = pio_bus_register(bus, 0x60, 1, &kbc_data_ops, k, "i8042-data");
	if (!ret)
		ret = pio_bus_register(bus, 0x64, 1, &kbc_cmd_ops, k, "i8042-cmd");
	return ret;
}
