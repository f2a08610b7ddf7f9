package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"hedgerow/proxy"
)

func TestCACommands(t *testing.T) {
	data := t.TempDir()
	certFile, keyFile := filepath.Join(data, "ca.crt"), filepath.Join(data, "ca.key")

	out, stderr, code := runCLI(t, data, "", "ca", "init", "--name", "Example School Filter CA")
	if code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, stderr)
	}
	fp := regexp.MustCompile(`([0-9A-F]{2}:){31}[0-9A-F]{2}`).FindString(out)
	if fp == "" {
		t.Fatalf("ca init printed no SHA-256 fingerprint:\n%s", out)
	}
	for _, want := range []string{certFile, keyFile, "Example School Filter CA", "trusted root", "0600", "valid"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca init output lacks %q:\n%s", want, out)
		}
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{{keyFile, 0o600}, {certFile, 0o644}} {
		info, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, info.Mode().Perm(), tc.mode)
		}
	}
	if _, err := proxy.LoadCA(certFile, keyFile); err != nil {
		t.Fatalf("the new CA does not load: %v", err)
	}

	// A second init fails and leaves both files as they were.
	keyBefore, _ := os.ReadFile(keyFile)
	certBefore, _ := os.ReadFile(certFile)
	_, stderr, code = runCLI(t, data, "", "ca", "init")
	if code == 0 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second ca init: exit %d, stderr %q", code, stderr)
	}
	keyAfter, _ := os.ReadFile(keyFile)
	certAfter, _ := os.ReadFile(certFile)
	if !bytes.Equal(keyBefore, keyAfter) || !bytes.Equal(certBefore, certAfter) {
		t.Error("second ca init changed the files")
	}

	out, stderr, code = runCLI(t, data, "", "ca", "show")
	if code != 0 {
		t.Fatalf("ca show: exit %d: %s", code, stderr)
	}
	for _, want := range []string{fp, "CN=Example School Filter CA", string(certBefore)} {
		if !strings.Contains(out, want) {
			t.Errorf("ca show output lacks %q:\n%s", want, out)
		}
	}
}

func TestCACommandsPaths(t *testing.T) {
	data := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "pki")
	certFile, keyFile := filepath.Join(elsewhere, "school.crt"), filepath.Join(elsewhere, "school.key")
	if _, stderr, code := runCLI(t, data, "", "ca", "init", "--cert", certFile, "--key", keyFile); code != 0 {
		t.Fatalf("ca init: %s", stderr)
	}
	out, stderr, code := runCLI(t, data, "", "ca", "show", "--cert", certFile)
	if code != 0 || !strings.Contains(out, "CN="+defaultCAName) {
		t.Errorf("ca show --cert: exit %d, %s%s", code, out, stderr)
	}
	if _, stderr, code := runCLI(t, data, "", "ca", "show"); code == 0 || !strings.Contains(stderr, "ca.crt") {
		t.Errorf("ca show without a CA: exit %d, stderr %q", code, stderr)
	}
}
