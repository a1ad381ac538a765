package main

import (
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	for _, ep := range []string{"127.0.0.1:2379", "localhost:1", "http://127.0.0.1:2379", "[::1]:2379"} {
		if err := checkLoopback(ep); err != nil {
			t.Errorf("%s: %v", ep, err)
		}
	}
	for _, ep := range []string{"10.0.0.1:2379", "example.com:2379", "http://192.0.2.1:1", "127.0.0.1"} {
		if checkLoopback(ep) == nil {
			t.Errorf("%s accepted", ep)
		}
	}
}

func TestParseFlagsBounds(t *testing.T) {
	cfg, err := parseFlags([]string{"--clients", "4", "--conns", "16"})
	if err != nil || cfg.conns != 4 || cfg.valueSize != 64 || len(cfg.endpoints) != 1 {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
	for _, args := range [][]string{
		{"--clients", "0"}, {"--duration", "11m"}, {"--endpoints", "10.1.1.1:2379"}, {"--value-size", "0"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	if pct(lat, 50) != "50ms" || pct(lat, 99) != "99ms" || pct(lat, 100) != "100ms" || pct(nil, 50) != "-" {
		t.Fatalf("p50 %s p99 %s max %s", pct(lat, 50), pct(lat, 99), pct(lat, 100))
	}
}
