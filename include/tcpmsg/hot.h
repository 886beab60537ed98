/* hot: marks the functions every message passes through. GCC places them
 * together in .text.hot, so that the path of a read and its reply spans a
 * few pages of code instead of a dozen: in a virtual machine that makes
 * each system call cost more after its return, every page touched again
 * counts (bench/README.md, "Where the rest of epoll's cost was").
 */
#ifndef TCPMSG_HOT_H
#define TCPMSG_HOT_H

#define TCPMSG_HOT __attribute__((hot))

#endif
