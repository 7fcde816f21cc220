package image

import "golang.org/x/sys/unix"

// oPath opens a directory only to name it in *at system calls (no read
// permission needed, nothing read).
const oPath = unix.O_PATH
