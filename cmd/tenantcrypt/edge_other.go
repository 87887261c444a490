//go:build !unix

package main

import "log/slog"

// fitConnLimit keeps max: there is no open-file limit to fit here.
func fitConnLimit(max int, _ *slog.Logger) int { return max }
