// libfuse 3.14 low-level API, pinned to the 3.5 API level the Swift layer is written against.
#ifndef MDEVSIM_CFUSE3_SHIM_H
#define MDEVSIM_CFUSE3_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#endif
