#include "block/block.h"
#include "core/core.h"

int img_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	log_error("img: the block layer is not built yet");
	return 1;
}
