#include "block/block.h"
#include "cli/cli.h"

int cmd_img(int argc, char **argv)
{
	return img_main(argc, argv);
}
