package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"hedgerow/proxy"
)

// defaultCAName is what users see when they inspect an intercepted page's
// certificate, so it says plainly who is decrypting.
const defaultCAName = "Hedgerow School Filter CA"

func (a *app) caCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Create and show the certificate authority used for HTTPS interception",
		Long: `HTTPS interception needs a certificate authority (CA) of the school's own: the
proxy signs a certificate for each intercepted site with it, and devices accept those
certificates only if they trust the CA. Create it once with "ca init", then install
ca.crt as a trusted root on managed devices. ca.key never leaves this machine.`,
		Example: `  hedgerow ca init --name "Example School Filter CA"
  hedgerow ca show`,
	}
	cmd.AddCommand(a.caInitCommand(), a.caShowCommand())
	return cmd
}

func (a *app) caInitCommand() *cobra.Command {
	var certFile, keyFile, name string
	cmd := &cobra.Command{
		Use:   "init [--cert FILE] [--key FILE] [--name NAME]",
		Short: "Create the school's interception CA (never overwrites an existing one)",
		Example: `  hedgerow ca init
  hedgerow ca init --name "Example School Filter CA"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			certFile, keyFile = a.caPaths(certFile, keyFile)
			ca, err := proxy.CreateCA(certFile, keyFile, name, a.now())
			if err != nil {
				return err
			}
			c := ca.Certificate()
			w := a.stdout
			fmt.Fprintf(w, "Created the HTTPS interception CA %q.\n\n", c.Subject.CommonName)
			fmt.Fprintf(w, "  certificate  %s (publish this)\n", certFile)
			fmt.Fprintf(w, "  private key  %s (mode 0600: keep it secret)\n", keyFile)
			fmt.Fprintf(w, "  SHA-256      %s\n", fingerprint(c))
			fmt.Fprintf(w, "  valid        %s\n\n", validity(c))
			fmt.Fprintf(w, `Next steps:
  - Install %s as a trusted root certificate on managed devices
    (MDM profile, or Group Policy "Trusted Root Certification Authorities").
    Devices can also fetch it from the proxy at /ca.crt; check the fingerprint above.
  - Keep %s secret and readable only by the filter (chmod 600). Anyone with it
    can impersonate any website to every device that trusts the CA; back it up
    somewhere as safe, because losing it means redeploying a new CA to every device.
  - Interception stays off until a group's policy enables it.
`, filepath.Base(certFile), filepath.Base(keyFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate file (default DATA/ca.crt)")
	cmd.Flags().StringVar(&keyFile, "key", "", "private key file (default DATA/ca.key)")
	cmd.Flags().StringVar(&name, "name", defaultCAName, "the CA's common name, shown to users who inspect a certificate")
	return cmd
}

func (a *app) caShowCommand() *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use:   "show [--cert FILE]",
		Short: "Show the CA certificate: subject, fingerprint, validity and PEM",
		Example: `  hedgerow ca show
  hedgerow ca show --cert /etc/hedgerow/ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			certFile, _ = a.caPaths(certFile, "")
			// Only the certificate: showing it must not need the key, so
			// staff without access to ca.key can still check a device.
			c, err := proxy.LoadCACertificate(certFile)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w (create the CA with \"hedgerow ca init\")", err)
			}
			if err != nil {
				return err
			}
			w := a.stdout
			fmt.Fprintf(w, "file     %s\n", certFile)
			fmt.Fprintf(w, "subject  %s\n", c.Subject)
			fmt.Fprintf(w, "SHA-256  %s\n", fingerprint(c))
			fmt.Fprintf(w, "valid    %s\n", validity(c))
			if now := a.now(); now.After(c.NotAfter) {
				fmt.Fprintf(w, "WARNING  expired: create a new CA and deploy it to managed devices\n")
			} else if c.NotAfter.Sub(now) < 90*24*time.Hour {
				fmt.Fprintf(w, "WARNING  expires within 90 days: plan a new CA and deploy it before then\n")
			}
			fmt.Fprintln(w)
			_, err = w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
			return err
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "certificate file (default DATA/ca.crt)")
	return cmd
}

// caPaths fills in the defaults inside the data directory.
func (a *app) caPaths(certFile, keyFile string) (string, string) {
	if certFile == "" {
		certFile = filepath.Join(a.dataDir, "ca.crt")
	}
	if keyFile == "" {
		keyFile = filepath.Join(a.dataDir, "ca.key")
	}
	return certFile, keyFile
}

// fingerprint formats the certificate's SHA-256 the way browsers and
// openssl show it, so it can be compared by eye on a device.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// validity formats the certificate's validity period in UTC.
func validity(c *x509.Certificate) string {
	const layout = "2006-01-02 15:04 MST"
	return c.NotBefore.UTC().Format(layout) + " to " + c.NotAfter.UTC().Format(layout)
}
