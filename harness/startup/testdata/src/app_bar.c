#include <stdio.h>
int bar(void);
int main(void) { printf("%d\n", bar()); return 0; }
