/* boardinfo: what the guest looks like from the app's side, for the board
 * tests of the system target: the machine uname(2) reports, the CPU part
 * number /proc/cpuinfo gives (0xc07 Cortex-A7, 0xd03 A53, 0xd08 A72, 0xd0b
 * A76, 0xc0f A15), the memory the kernel sees, and the word size of this
 * program. Prints one line, then "ready", then waits for SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void onsig(int s) { (void)s; stop = 1; }

static void field(const char *file, const char *key, char *out, size_t n) {
	char line[256];
	FILE *f = fopen(file, "r");
	snprintf(out, n, "?");
	if (!f) return;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, strlen(key)) == 0) {
			char *v = strchr(line, ':');
			if (!v) continue;
			v++;
			while (*v == ' ' || *v == '\t') v++;
			v[strcspn(v, " \n")] = 0;
			snprintf(out, n, "%s", v);
			break;
		}
	}
	fclose(f);
}

int main(void) {
	struct utsname u;
	char part[32], mem[32];
	signal(SIGTERM, onsig);
	uname(&u);
	field("/proc/cpuinfo", "CPU part", part, sizeof part);
	field("/proc/meminfo", "MemTotal", mem, sizeof mem);
	printf("uname=%s cpupart=%s memtotal_kb=%s bits=%d\n", u.machine, part, mem, (int)(8 * sizeof(void *)));
	printf("ready board\n");
	fflush(stdout);
	while (!stop) pause();
	return 0;
}
