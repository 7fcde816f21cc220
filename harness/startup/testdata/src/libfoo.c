int foo1(void) { return 1; }
#ifdef WITH_V2
int foo2(void) { return 2; }
#endif
