// Package agent is hil's helper on a board. It runs as the entrypoint of a
// tiny "network holder" container whose network namespace the app container
// joins (docker --network container:...), so the app's capture interface
// exists before the app starts:
//
//	hil-agent pause                    hold the namespace until SIGTERM
//	hil-agent link [--iface eth0]      create the app's interface and relay frames
//	hil-agent netinfo [--iface eth0]   print the interface's receive coalescing
//	                                   and counters as JSON (NetInfo)
//
// `link` makes a veth pair inside the namespace: the app end gets the
// scenario's interface name, the agent writes fixture frames on the other end
// with AF_PACKET so that they arrive at the app as ingress. Frames travel
// over stdin/stdout (an SSH channel) as 4-byte big-endian lengths plus
// bytes; the first frame the agent writes is empty and means "ready".
package agent
