int bar(void) { return 3; }
