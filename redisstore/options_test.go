package redisstore

import (
	"slices"
	"testing"
	"time"
)

func TestClientOption(t *testing.T) {
	o, err := clientOption("redis://user:secret@db.example:6380/2", time.Second)
	if err != nil || !slices.Equal(o.InitAddress, []string{"db.example:6380"}) || o.Username != "user" || o.Password != "secret" || o.SelectDB != 2 || o.TLSConfig != nil {
		t.Errorf("redis://: %+v, %v", o, err)
	}
	if !o.DisableRetry || !o.DisableCache || o.Dialer.Timeout != time.Second {
		t.Errorf("fail-fast settings missing: %+v", o)
	}
	if o, err := clientOption("rediss://db.example:6380", time.Second); err != nil || o.TLSConfig == nil || o.TLSConfig.ServerName != "db.example" {
		t.Errorf("rediss://: %+v, %v", o, err)
	}
	if o, err := clientOption("unix:///run/redis/r.sock", time.Second); err != nil || !slices.Equal(o.InitAddress, []string{"/run/redis/r.sock"}) || o.DialCtxFn == nil {
		t.Errorf("unix://: %+v, %v", o, err)
	}
	o, err = clientOption("10.0.0.1:7000, 10.0.0.2:7001,redis://10.0.0.3:7002", time.Second)
	if err != nil || !slices.Equal(o.InitAddress, []string{"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}) {
		t.Errorf("seed list: %v, %v", o.InitAddress, err)
	}
	for _, bad := range []string{"", "10.0.0.1:7000,,10.0.0.2:7001", "unix:///a.sock,10.0.0.1:7000", "10.0.0.1:7000,unix:///a.sock", "http://x:1", "redis://h:1/notanumber"} {
		if _, err := clientOption(bad, time.Second); err == nil {
			t.Errorf("clientOption(%q) succeeded", bad)
		}
	}
	if got := redact("redis://user:secret@h:1"); got != "redis://…@h:1" {
		t.Errorf("redact = %q", got)
	}
}
