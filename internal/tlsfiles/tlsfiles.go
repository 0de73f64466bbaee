// Package tlsfiles is the one loader of TLS files for the whole program:
// the Kafka clients (FANOUT_TLS_*) and the http routes (http.tls.*) read
// their CA bundle and client certificate through it, so both check and
// word their problems the same way.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files of a TLS client.
type Files struct {
	// CAFile is a bundle of roots trusted for the server, replacing the
	// system's; empty keeps the system's.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for
	// mutual TLS: both or neither.
	CertFile, KeyFile  string
	InsecureSkipVerify bool
}

// Field names the part of Files a problem is about, as the configuration
// spells it: "ca_file", "cert_file" or "key_file".
type Field string

// The fields of Files.
const (
	FieldCA   Field = "ca_file"
	FieldCert Field = "cert_file"
	FieldKey  Field = "key_file"
)

// Error is one problem with one file. It names the field, never the file:
// its name may come from a variable the operator keeps out of logs, and the
// field says which file it is.
type Error struct {
	Field Field
	Msg   string
}

func (e *Error) Error() string { return string(e.Field) + ": " + e.Msg }

// Config reads the files and returns a client configuration (TLS 1.2 at
// least). Every problem is returned, joined, each an *Error naming its
// field and the file.
func Config(f Files) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // the operator's explicit choice
	var errs []error
	fail := func(field Field, format string, args ...any) {
		errs = append(errs, &Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		switch {
		case err != nil:
			fail(FieldCA, "cannot read it: %v", cause(err))
		default:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				fail(FieldCA, "holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		fail(FieldKey, "required with cert_file")
	case f.CertFile == "" && f.KeyFile != "":
		fail(FieldCert, "required with key_file")
	case f.CertFile != "":
		for _, c := range []struct {
			field Field
			name  string
		}{{FieldCert, f.CertFile}, {FieldKey, f.KeyFile}} {
			if _, err := os.Stat(c.name); err != nil {
				fail(c.field, "cannot read it: %v", cause(err))
			}
		}
		if len(errs) == 0 {
			cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
			if err != nil {
				fail(FieldCert, "does not load with key_file: %v", err)
			} else {
				cfg.Certificates = []tls.Certificate{cert}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// cause drops the file name an *os.PathError repeats.
func cause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
