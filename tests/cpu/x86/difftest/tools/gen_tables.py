#!/usr/bin/env python3
# Generates the SSE/SSE4/x87 generator tables of the difftest (one-off helper; output committed).
N,P66,F3,F2=0,0x66,0xf3,0xf2
out=[]
MMXN=('pi2ps','pi2pd','ps2pi','pd2pi')
def e(fam,name,mp,mapn,opc,imm='IMM_NONE',fl='',dig=-1,fix='0',un='0'):
    if ((' mm' in name or ',mm' in name) and 'xmm' not in name) or any(x in name for x in MMXN) or name in ('movntq','movq2dq','movdq2q','maskmovq','pshufw'):
        fam='FAM_MMX'
    flags='E_M | E_NO66 | E_A16'+(' | '+fl if fl else '')
    out.append('\tX(%s, "%s", %d, 0x%02x, %d, 0x%02x, %s, %s, %s, %s),' % (fam,name,mapn,opc,dig,mp,imm,flags,un,fix))
S='FAM_SSE'
def four(opc,base,mps=(N,P66,F3,F2),suf=('ps','pd','ss','sd'),**k):
    for mp,s in zip(mps,suf): e(S,base+s,mp,1,opc,**k)
# moves
four(0x10,'movu/movs-load ',suf=('ups','upd','ss','sd'))
four(0x11,'movu/movs-store ',suf=('ups','upd','ss','sd'))
e(S,'movlps/movhlps',N,1,0x12); e(S,'movlpd',P66,1,0x12,fl='E_MEM'); e(S,'movsldup',F3,1,0x12); e(S,'movddup',F2,1,0x12)
e(S,'movlps store',N,1,0x13,fl='E_MEM'); e(S,'movlpd store',P66,1,0x13,fl='E_MEM')
e(S,'unpcklps',N,1,0x14); e(S,'unpcklpd',P66,1,0x14); e(S,'unpckhps',N,1,0x15); e(S,'unpckhpd',P66,1,0x15)
e(S,'movhps/movlhps',N,1,0x16); e(S,'movhpd',P66,1,0x16,fl='E_MEM'); e(S,'movshdup',F3,1,0x16)
e(S,'movhps store',N,1,0x17,fl='E_MEM'); e(S,'movhpd store',P66,1,0x17,fl='E_MEM')
e(S,'movaps',N,1,0x28); e(S,'movapd',P66,1,0x28); e(S,'movaps store',N,1,0x29); e(S,'movapd store',P66,1,0x29)
four(0x2a,'cvt',suf=('pi2ps','pi2pd','si2ss','si2sd'))
e(S,'movntps',N,1,0x2b,fl='E_MEM'); e(S,'movntpd',P66,1,0x2b,fl='E_MEM')
four(0x2c,'cvtt',suf=('ps2pi','pd2pi','ss2si','sd2si'))
four(0x2d,'cvt',suf=('ps2pi','pd2pi','ss2si','sd2si'))
e(S,'ucomiss',N,1,0x2e); e(S,'ucomisd',P66,1,0x2e); e(S,'comiss',N,1,0x2f); e(S,'comisd',P66,1,0x2f)
e(S,'movmskps',N,1,0x50,fl='E_REG'); e(S,'movmskpd',P66,1,0x50,fl='E_REG')
four(0x51,'sqrt')
e(S,'rsqrtps',N,1,0x52); e(S,'rsqrtss',F3,1,0x52); e(S,'rcpps',N,1,0x53); e(S,'rcpss',F3,1,0x53)
for o,n in ((0x54,'and'),(0x55,'andn'),(0x56,'or'),(0x57,'xor')):
    e(S,n+'ps',N,1,o); e(S,n+'pd',P66,1,o)
for o,n in ((0x58,'add'),(0x59,'mul'),(0x5c,'sub'),(0x5d,'min'),(0x5e,'div'),(0x5f,'max')):
    four(o,n)
four(0x5a,'cvt',suf=('ps2pd','pd2ps','ss2sd','sd2ss'))
e(S,'cvtdq2ps',N,1,0x5b); e(S,'cvtps2dq',P66,1,0x5b); e(S,'cvttps2dq',F3,1,0x5b)
names={0x60:'punpcklbw',0x61:'punpcklwd',0x62:'punpckldq',0x63:'packsswb',0x64:'pcmpgtb',0x65:'pcmpgtw',0x66:'pcmpgtd',0x67:'packuswb',
 0x68:'punpckhbw',0x69:'punpckhwd',0x6a:'punpckhdq',0x6b:'packssdw',0x74:'pcmpeqb',0x75:'pcmpeqw',0x76:'pcmpeqd',
 0xd1:'psrlw',0xd2:'psrld',0xd3:'psrlq',0xd4:'paddq',0xd5:'pmullw',0xd8:'psubusb',0xd9:'psubusw',0xda:'pminub',0xdb:'pand',
 0xdc:'paddusb',0xdd:'paddusw',0xde:'pmaxub',0xdf:'pandn',0xe0:'pavgb',0xe1:'psraw',0xe2:'psrad',0xe3:'pavgw',0xe4:'pmulhuw',0xe5:'pmulhw',
 0xe8:'psubsb',0xe9:'psubsw',0xea:'pminsw',0xeb:'por',0xec:'paddsb',0xed:'paddsw',0xee:'pmaxsw',0xef:'pxor',
 0xf1:'psllw',0xf2:'pslld',0xf3:'psllq',0xf4:'pmuludq',0xf5:'pmaddwd',0xf6:'psadbw',0xf8:'psubb',0xf9:'psubw',0xfa:'psubd',0xfb:'psubq',
 0xfc:'paddb',0xfd:'paddw',0xfe:'paddd'}
for o,n in sorted(names.items()):
    e(S,n+' mm',N,1,o); e(S,n+' xmm',P66,1,o)
e(S,'punpcklqdq',P66,1,0x6c); e(S,'punpckhqdq',P66,1,0x6d)
e(S,'movd/q mm,r/m',N,1,0x6e); e(S,'movd/q xmm,r/m',P66,1,0x6e)
e(S,'movq mm,mm/m64',N,1,0x6f); e(S,'movdqa',P66,1,0x6f); e(S,'movdqu',F3,1,0x6f)
e(S,'pshufw',N,1,0x70,imm='IMM_B'); e(S,'pshufd',P66,1,0x70,imm='IMM_B'); e(S,'pshufhw',F3,1,0x70,imm='IMM_B'); e(S,'pshuflw',F2,1,0x70,imm='IMM_B')
for o,d,n in ((0x71,2,'psrlw'),(0x71,4,'psraw'),(0x71,6,'psllw'),(0x72,2,'psrld'),(0x72,4,'psrad'),(0x72,6,'pslld'),(0x73,2,'psrlq'),(0x73,6,'psllq')):
    e(S,n+' mm,Ib',N,1,o,imm='IMM_B',fl='E_REG',dig=d); e(S,n+' xmm,Ib',P66,1,o,imm='IMM_B',fl='E_REG',dig=d)
e(S,'psrldq',P66,1,0x73,imm='IMM_B',fl='E_REG',dig=3); e(S,'pslldq',P66,1,0x73,imm='IMM_B',fl='E_REG',dig=7)
out.append('\tX(FAM_MMX, "emms", 1, 0x77, -1, 0x00, IMM_NONE, E_NO66, 0, 0),')
e(S,'haddpd',P66,1,0x7c); e(S,'haddps',F2,1,0x7c); e(S,'hsubpd',P66,1,0x7d); e(S,'hsubps',F2,1,0x7d)
e(S,'movd/q r/m,mm',N,1,0x7e); e(S,'movd/q r/m,xmm',P66,1,0x7e); e(S,'movq xmm,xmm/m64',F3,1,0x7e)
e(S,'movq mm/m64,mm',N,1,0x7f); e(S,'movdqa store',P66,1,0x7f); e(S,'movdqu store',F3,1,0x7f)
four(0xc2,'cmp',imm='IMM_B')
e(S,'movnti',N,1,0xc3,fl='E_MEM')
e(S,'pinsrw mm',N,1,0xc4,imm='IMM_B'); e(S,'pinsrw xmm',P66,1,0xc4,imm='IMM_B')
e(S,'pextrw mm',N,1,0xc5,imm='IMM_B',fl='E_REG'); e(S,'pextrw xmm',P66,1,0xc5,imm='IMM_B',fl='E_REG')
e(S,'shufps',N,1,0xc6,imm='IMM_B'); e(S,'shufpd',P66,1,0xc6,imm='IMM_B')
e(S,'addsubpd',P66,1,0xd0); e(S,'addsubps',F2,1,0xd0)
e(S,'movq xmm/m64,xmm',P66,1,0xd6); e(S,'movq2dq',F3,1,0xd6,fl='E_REG'); e(S,'movdq2q',F2,1,0xd6,fl='E_REG')
e(S,'pmovmskb mm',N,1,0xd7,fl='E_REG'); e(S,'pmovmskb xmm',P66,1,0xd7,fl='E_REG')
e(S,'cvttpd2dq',P66,1,0xe6); e(S,'cvtdq2pd',F3,1,0xe6); e(S,'cvtpd2dq',F2,1,0xe6)
e(S,'movntq',N,1,0xe7,fl='E_MEM'); e(S,'movntdq',P66,1,0xe7,fl='E_MEM')
e(S,'lddqu',F2,1,0xf0,fl='E_MEM')
e(S,'maskmovq',N,1,0xf7,fl='E_REG | E_SINGLE',fix='FIX_STR'); e(S,'maskmovdqu',P66,1,0xf7,fl='E_REG | E_SINGLE',fix='FIX_STR')
sse=out; out=[]
S4='FAM_SSE4'
ss3={0x00:'pshufb',0x01:'phaddw',0x02:'phaddd',0x03:'phaddsw',0x04:'pmaddubsw',0x05:'phsubw',0x06:'phsubd',0x07:'phsubsw',0x08:'psignb',0x09:'psignw',0x0a:'psignd',0x0b:'pmulhrsw',0x1c:'pabsb',0x1d:'pabsw',0x1e:'pabsd'}
for o,n in sorted(ss3.items()):
    e(S4,n+' mm',N,2,o); e(S4,n+' xmm',P66,2,o)
s41={0x10:'pblendvb',0x14:'blendvps',0x15:'blendvpd',0x17:'ptest',0x20:'pmovsxbw',0x21:'pmovsxbd',0x22:'pmovsxbq',0x23:'pmovsxwd',0x24:'pmovsxwq',0x25:'pmovsxdq',
 0x28:'pmuldq',0x29:'pcmpeqq',0x2b:'packusdw',0x30:'pmovzxbw',0x31:'pmovzxbd',0x32:'pmovzxbq',0x33:'pmovzxwd',0x34:'pmovzxwq',0x35:'pmovzxdq',0x37:'pcmpgtq',
 0x38:'pminsb',0x39:'pminsd',0x3a:'pminuw',0x3b:'pminud',0x3c:'pmaxsb',0x3d:'pmaxsd',0x3e:'pmaxuw',0x3f:'pmaxud',0x40:'pmulld',0x41:'phminposuw'}
for o,n in sorted(s41.items()):
    e(S4,n,P66,2,o)
e(S4,'movntdqa',P66,2,0x2a,fl='E_MEM')
e(S4,'crc32 Gd,Eb',F2,2,0xf0,fl='E_B'); e(S4,'crc32 Gd,Ev',F2,2,0xf1)
e(S4,'palignr mm',N,3,0x0f,imm='IMM_B'); e(S4,'palignr xmm',P66,3,0x0f,imm='IMM_B')
s4i={0x08:'roundps',0x09:'roundpd',0x0a:'roundss',0x0b:'roundsd',0x0c:'blendps',0x0d:'blendpd',0x0e:'pblendw',0x14:'pextrb',0x15:'pextrw Ev',0x16:'pextrd/q',0x17:'extractps',
 0x20:'pinsrb',0x21:'insertps',0x22:'pinsrd/q',0x40:'dpps',0x41:'dppd',0x42:'mpsadbw',0x60:'pcmpestrm',0x61:'pcmpestri',0x62:'pcmpistrm',0x63:'pcmpistri'}
for o,n in sorted(s4i.items()):
    e(S4,n,P66,3,o,imm='IMM_B')
sse4=out; out=[]
# x87
X='FAM_X87'
def xm(opc,dig,name,un='0',fl=''):
    fix='FIX_FNSTENV' if (opc,dig) in ((0xd9,6),(0xdd,6)) else '0'
    out.append('\tX(FAM_X87, "%s", 0, 0x%02x, %d, 0x00, IMM_NONE, E_M | E_MEM%s, %s, %s),' % (name,opc,dig,(' | '+fl) if fl else '',un,fix))
def xr(opc,modrm,name,un='0'):
    out.append('\tXF(FAM_X87, "%s", 0, 0x%02x, 0x%02x, E_NO66, %s),' % (name,opc,modrm,un))
def xrg(opc,dig,name,un='0'):
    for r in range(8): xr(opc,0xc0|dig<<3|r,name+' st(%d)'%r,un)
C1U='U_FSW(FSW_C0 | FSW_C2 | FSW_C3)'
ar=['fadd','fmul','fcom','fcomp','fsub','fsubr','fdiv','fdivr']
for d,n in enumerate(ar):
    un='U_FSW(FSW_C1)' if d in (2,3) else C1U
    xm(0xd8,d,n+' m32',un); xrg(0xd8,d,n,un); xm(0xdc,d,n+' m64',un); xm(0xda,d,'fi'+n[1:]+' m32int',un); xm(0xde,d,'fi'+n[1:]+' m16int',un)
for d,n in ((0,'faddp'),(1,'fmulp'),(4,'fsubrp'),(5,'fsubp'),(6,'fdivrp'),(7,'fdivp')):
    xrg(0xde,d,n,C1U)
for d,n in ((0,'fadd to'),(1,'fmul to'),(4,'fsubr to'),(5,'fsub to'),(6,'fdivr to'),(7,'fdiv to')):
    xrg(0xdc,d,n,C1U)
xr(0xde,0xd9,'fcompp','U_FSW(FSW_C1)')
for d,n in ((0,'fld m32'),(2,'fst m32'),(3,'fstp m32'),(4,'fldenv'),(5,'fldcw'),(6,'fnstenv'),(7,'fnstcw')):
    xm(0xd9,d,n,C1U if d in (0,2,3) else '0', 'E_BIG' if d in (4,6) else '')
xrg(0xd9,0,'fld'); xrg(0xd9,1,'fxch'); xrg(0xd9,3,'fstp1 (alias of fstp)')
for m,n in ((0xd0,'fnop'),(0xe0,'fchs'),(0xe1,'fabs'),(0xe4,'ftst'),(0xe5,'fxam'),(0xe8,'fld1'),(0xe9,'fldl2t'),(0xea,'fldl2e'),(0xeb,'fldpi'),(0xec,'fldlg2'),(0xed,'fldln2'),(0xee,'fldz'),
            (0xf0,'f2xm1'),(0xf1,'fyl2x'),(0xf2,'fptan'),(0xf3,'fpatan'),(0xf4,'fxtract'),(0xf5,'fprem1'),(0xf6,'fdecstp'),(0xf7,'fincstp'),(0xf8,'fprem'),(0xf9,'fyl2xp1'),
            (0xfa,'fsqrt'),(0xfb,'fsincos'),(0xfc,'frndint'),(0xfd,'fscale'),(0xfe,'fsin'),(0xff,'fcos')):
    un='0' if n in ('fnop','fdecstp','fincstp','ftst','fxam','fprem','fprem1') else C1U
    if n in ('ftst',): un='U_FSW(FSW_C1)'
    xr(0xd9,m,n,un)
for d,n in ((0,'fild m32'),(1,'fisttp m32'),(2,'fist m32'),(3,'fistp m32'),(5,'fld m80'),(7,'fstp m80')):
    xm(0xdb,d,n,C1U)
for d,n in ((0,'fcmovnb'),(1,'fcmovne'),(2,'fcmovnbe'),(3,'fcmovnu'),(5,'fucomi'),(6,'fcomi')):
    xrg(0xdb,d,n,'U_FSW(FSW_C1)' if d>=5 else C1U)
for d,n in ((0,'fcmovb'),(1,'fcmove'),(2,'fcmovbe'),(3,'fcmovu')):
    xrg(0xda,d,n,C1U)
xr(0xda,0xe9,'fucompp','U_FSW(FSW_C1)')
xr(0xdb,0xe2,'fnclex'); xr(0xdb,0xe3,'fninit')
for d,n in ((0,'fld m64'),(1,'fisttp m64'),(2,'fst m64'),(3,'fstp m64'),(4,'frstor'),(6,'fnsave'),(7,'fnstsw m16')):
    xm(0xdd,d,n,C1U if d<4 else '0','E_BIG' if d in (4,6) else '')
xrg(0xdd,0,'ffree'); xrg(0xdd,2,'fst'); xrg(0xdd,3,'fstp'); xrg(0xdd,4,'fucom','U_FSW(FSW_C1)'); xrg(0xdd,5,'fucomp','U_FSW(FSW_C1)')
for d,n in ((0,'fild m16'),(1,'fisttp m16'),(2,'fist m16'),(3,'fistp m16'),(4,'fbld'),(5,'fild m64'),(6,'fbstp'),(7,'fistp m64')):
    xm(0xdf,d,n,C1U)
xr(0xdf,0xe0,'fnstsw ax')
# undocumented aliases that the hardware executes
xrg(0xdc,2,'fcom2 (alias)','U_FSW(FSW_C1)'); xrg(0xdc,3,'fcomp3 (alias)','U_FSW(FSW_C1)'); xrg(0xdd,1,'fxch4 (alias)')
xrg(0xde,2,'fcomp5 (alias)','U_FSW(FSW_C1)'); xrg(0xdf,0,'ffreep'); xrg(0xdf,1,'fxch7 (alias)'); xrg(0xdf,2,'fstp8 (alias)'); xrg(0xdf,3,'fstp9 (alias)')
xr(0xdb,0xe0,'fneni (nop)'); xr(0xdb,0xe1,'fndisi (nop)'); xr(0xdb,0xe4,'fnsetpm (nop)')
xrg(0xdf,5,'fucomip','U_FSW(FSW_C1)'); xrg(0xdf,6,'fcomip','U_FSW(FSW_C1)')
x87=out
import os, sys
hdr='/* Generated by a one-off script from the SDM opcode maps (see docs/cpu-difftest.md); %s family.\n * Included inside dt_entries[]. */\n'
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'gen_table_sse.h'),'w').write(hdr%'SSE/SSE2/SSE3 (0F map, MMX forms included)'+'\n'.join(sse)+'\n')
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'gen_table_sse4.h'),'w').write(hdr%'SSSE3/SSE4.1/SSE4.2 (0F38, 0F3A)'+'\n'.join(sse4)+'\n')
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'gen_table_x87.h'),'w').write(hdr%'x87 (D8-DF; memory forms by ModRM.reg, register forms by the whole ModRM)'+'\n'.join(x87)+'\n')
print(len(sse),len(sse4),len(x87))
