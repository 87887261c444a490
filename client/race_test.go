//go:build race

package client

// raceEnabled: the race detector slows the data path many times over, so
// the largest sizes only run without it.
const raceEnabled = true
