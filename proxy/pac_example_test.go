package proxy

import (
	"bytes"
	"net/netip"
	"os"
	"testing"
)

// TestPACExample keeps deploy/proxy.pac, the example in the install guide,
// what hedgerow serves for the example configuration. Run with
// HEDGEROW_UPDATE_PAC=1 to rewrite it after changing PACFile.
func TestPACExample(t *testing.T) {
	var nets []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
		nets = append(nets, netip.MustParsePrefix(s))
	}
	want, err := PACFile("proxy.school.example:3128", nets, []string{"intranet.school.example"})
	if err != nil {
		t.Fatal(err)
	}
	const path = "../deploy/proxy.pac"
	if os.Getenv("HEDGEROW_UPDATE_PAC") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what hedgerow serves for the example configuration; rerun with HEDGEROW_UPDATE_PAC=1", path)
	}
}
