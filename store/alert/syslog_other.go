//go:build windows || plan9

package alert

import "errors"

func newSyslog(*Dispatcher, SyslogConfig) (sender, error) {
	return nil, errors.New("syslog is not available on this system")
}
