/* capcount: a tiny armhf test app for the system target's own tests, so
 * they do not depend on the sample images. It captures on an interface with
 * AF_PACKET (as libpcap does underneath), prints "ready iface=NAME", and on
 * SIGTERM/SIGINT prints "summary frames=N drops=D" and exits 0.
 * Other modes: "crash" (stderr + exit 1), "hang" (never ready), "hog"
 * (ready, then real-time spinners on every CPU starve the rest of the
 * guest, hil-init included, while QEMU itself runs on: a hung guest). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void onsig(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
	const char *mode = argc > 1 ? argv[1] : "capture";
	const char *iface = argc > 2 ? argv[2] : "eth0";
	if (!strcmp(mode, "crash")) {
		fprintf(stderr, "capcount: cannot open config /etc/capcount.conf\n");
		return 1;
	}
	if (!strcmp(mode, "hog")) {
		FILE *f = fopen("/proc/sys/kernel/sched_rt_runtime_us", "w");
		if (f) { fputs("-1", f); fclose(f); } /* no RT throttling */
		printf("ready iface=hog\n");
		fflush(stdout);
		usleep(500000); /* let hil-init forward the line */
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		for (long i = 1; i < n; i++)
			if (fork() == 0) break;
		struct sched_param sp = { .sched_priority = sched_get_priority_max(SCHED_FIFO) };
		if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) { perror("capcount: sched_setscheduler"); return 2; }
		for (;;) ;
	}
	if (!strcmp(mode, "hang")) {
		printf("starting\n");
		fflush(stdout);
		for (;;) pause();
	}
	struct sigaction sa = {0};
	sa.sa_handler = onsig; /* no SA_RESTART: recv returns EINTR */
	sigaction(SIGTERM, &sa, 0);
	sigaction(SIGINT, &sa, 0);
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (fd < 0) { perror("capcount: socket"); return 2; }
	int rb = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb);
	struct sockaddr_ll sll = {0};
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = if_nametoindex(iface);
	if (!sll.sll_ifindex) { fprintf(stderr, "capcount: no interface %s\n", iface); return 2; }
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("capcount: bind"); return 2; }
	printf("ready iface=%s\n", iface);
	fflush(stdout);
	unsigned long frames = 0;
	char buf[2048];
	while (!stop) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) { if (errno == EINTR) continue; perror("capcount: recv"); return 2; }
		frames++;
	}
	struct tpacket_stats st = {0};
	socklen_t sl = sizeof st;
	getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
	/* Frames still queued in the socket count as received, not dropped. */
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0) break;
		frames++;
	}
	printf("summary frames=%lu drops=%u\n", frames, st.tp_drops);
	/* The NIC's own counters, to tell where frames went missing. */
	const char *names[] = {"rx_packets", "rx_dropped", "rx_errors", "rx_missed_errors", "rx_over_errors", "rx_fifo_errors"};
	for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
		char path[128], val[32] = "?";
		snprintf(path, sizeof path, "/sys/class/net/%s/statistics/%s", iface, names[i]);
		FILE *f = fopen(path, "r");
		if (f) { if (!fgets(val, sizeof val, f)) strcpy(val, "?"); fclose(f); }
		val[strcspn(val, "\n")] = 0;
		printf("nic %s=%s\n", names[i], val);
	}
	/* The guest's wall clock, so tests can check it was re-synced. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("clock %lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
	fflush(stdout);
	return 0;
}
