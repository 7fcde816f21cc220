/* A library that checks the CPU before using what it was built for. */
unsigned long getauxval(unsigned long type);
int bar(void) { return getauxval(16) != 0; }
