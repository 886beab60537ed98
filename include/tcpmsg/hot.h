/* hot: marks the functions that every message an epoll worker serves
 * passes through. GCC places them together in .text.hot, so that a read and
 * its reply run in three pages of code instead of ten: each page touched
 * again after a system call costs time of its own (bench/README.md, "Per
 * frame, per page, per sample").
 */
#ifndef TCPMSG_HOT_H
#define TCPMSG_HOT_H

#define TCPMSG_HOT __attribute__((hot))

#endif
