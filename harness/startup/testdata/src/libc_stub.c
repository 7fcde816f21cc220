/* Stand-in for glibc's libc.so.6: only its symbol versions matter to the
   static check. Built with the version scripts libc-2.36.map/libc-2.31.map. */
int __libc_start_main(void) { return 0; }
int __libc_start_main_old(void) { return 0; }
int puts(const char *s) { (void)s; return 0; }
void abort(void) { for (;;) ; }
void __cxa_finalize(void *d) { (void)d; }
int printf(const char *f, ...) { (void)f; return 0; }
