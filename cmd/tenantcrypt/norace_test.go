//go:build !race

package main

// raceEnabled: the race detector multiplies a process's memory (shadow
// memory for every goroutine's stack and every buffer), so memory bounds
// are measured only without it.
const raceEnabled = false
