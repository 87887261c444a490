//go:build !unix

package coredump

func disable() error { return ErrUnsupported }

func disabled() (bool, error) { return false, ErrUnsupported }
