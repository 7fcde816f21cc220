// Package targetbench measures, side by side in one run, how long each
// target takes from Boot to the sample app's ready line (or, where the app
// cannot capture, to its first line of output). Run it through
// scripts/bench/50-targets.sh; it holds only a benchmark.
package targetbench
