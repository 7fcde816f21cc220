/* Stand-in for ld-linux-armhf.so.3. */
int _dl_stub_marker;
