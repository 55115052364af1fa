/*
 * livecount — the systemd notification protocol (sd_notify), spoken
 * directly: when NOTIFY_SOCKET is set, one datagram per call to that
 * AF_UNIX socket ("READY=1", "STOPPING=1", "STATUS=..."). Without it,
 * nothing happens. No libsystemd needed.
 *
 * Main thread only (it reads the environment once, at the first call).
 */
#ifndef LC_NOTIFY_H
#define LC_NOTIFY_H

/** Sends one notification (printf-style). Returns 0, or -1 on error. */
int lc_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
