/* image.h: which program a process is running, and whether it still runs.
 *
 * A PID names a process for its whole life, but the program in it can change: exec()
 * keeps the PID and the start time and replaces the image. A traced image is
 * identified by the executable's device and inode plus AT_RANDOM from /proc/PID/auxv
 * (the address of 16 random bytes the kernel puts on each new image's stack: with ASLR
 * a fresh value per exec, so even an exec of the same binary is seen); the start time
 * tells a reused PID apart.
 */
#ifndef LS_IMAGE_H
#define LS_IMAGE_H

#include <stdint.h>
#include <sys/types.h>

struct ls_image_id {
	uint64_t start_time;	/* /proc/PID/stat field 22, clock ticks since boot */
	uint64_t dev, ino;	/* of /proc/PID/exe; 0 when it has none */
	uint64_t at_random;	/* from /proc/PID/auxv; 0 when unreadable */
	char state;		/* /proc/PID/stat field 3: R S D Z T ... */
	int kthread;		/* PF_KTHREAD */
};

/* Read pid's identity. 0, -ESRCH (gone), or -errno. */
int ls_image_read(pid_t pid, struct ls_image_id *id);

/* 1 if b is a different image than a in the same process (an exec), or a different
 * process under the same PID; 0 if the same. Fields unknown in either are ignored. */
int ls_image_changed(const struct ls_image_id *a, const struct ls_image_id *b);

/* An exec check that needs no privilege later: a read-only descriptor on /proc/PID/mem
 * stays bound to the process image (mm) it was opened on, and reads nothing once that
 * image is gone (an exec, or the exit). It reads id->at_random's 16 bytes, which stay
 * mapped for the image's life (the kernel put them on its first stack); it never
 * writes. Open it while privileged (it needs ptrace access); -errno on failure.
 * ls_image_fd_gone(): 1 when the image is gone. */
int ls_image_fd_open(pid_t pid, const struct ls_image_id *id);
int ls_image_fd_gone(int fd, const struct ls_image_id *id);

/* The last words of an EPERM, true for who we are: "run loopscope as root (...)"
 * when we are not root, else what root is missing (a capability dropped from this
 * process) or who refused (a security module, a user namespace). */
const char *ls_perm_advice(void);

#endif /* LS_IMAGE_H */
