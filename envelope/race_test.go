//go:build race

package envelope

// raceEnabled: the race detector adds allocations of its own, so
// allocation counts are only checked without it.
const raceEnabled = true
