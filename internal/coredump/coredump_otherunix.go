//go:build unix && !linux

package coredump

func disable() error { return setCoreLimitZero() }

func disabled() (bool, error) { return coreLimitZero() }
