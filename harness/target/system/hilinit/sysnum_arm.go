package main

const sysFinitModule = 379
