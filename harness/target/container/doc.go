// Package container boots an image on a Docker engine through the Docker
// Engine API (github.com/moby/moby/client): the engine of DOCKER_HOST (or
// the local socket), asked at every boot. Importing the package registers
// the target as "container" (hil's CLI imports it). The image is loaded from what hil already holds (a docker-save tarball written
// with go-containerregistry, then the engine's image load: no registry
// pull), tagged hil.local/<name>:<digest prefix>, and removed again on Close
// when hil loaded it.
//
// Networking mirrors how a board sees frames: the app container has network
// mode none, and right after start hil moves one end of a veth pair into
// its network namespace, named as the scenario asks, with NET_RAW and
// NET_ADMIN granted, so replayed frames arrive as ingress. The app must not
// run before its interface exists, so the entrypoint is prefixed by a
// bind-mounted static busybox (the host's, Debian busybox-static) that waits
// for the interface and then execs the real entrypoint: the app still runs
// as PID 1 with the image's user, env and workdir; Info reports what Docker
// runs after the wrapper ("docker_runs", "entrypoint", "cmd").
//
// An image of a foreign architecture runs through a bind-mounted static
// qemu-user (entrypoint = [qemu, original entrypoint...]; no binfmt change
// on the host), so capture is unsupported there with the emulator's reason,
// exactly as on the user target. A native image captures for real.
//
// The veth and the qemu bind mount need the engine's host to be this host,
// so only local engines (unix socket) are supported.
package container
