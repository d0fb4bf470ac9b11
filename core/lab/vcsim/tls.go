// HTTPS for the lab's vCenter/ESXi: with tls_cert and tls_key in the topology, the server
// presents that certificate (core/lab/simulator.py makes one from a CA of the test's own, so a
// client can trust the CA file or pin the certificate's thumbprint, as with a real vCenter).
//
// govmomi 0.24.2's Service.NewServer serves TLS when Service.TLS is set (the URL becomes https)
// and then asks for, but does not require, a client certificate (tls.RequestClientCert, for
// LoginExtensionByCertificate): clients without one are served.
package main

import (
	"crypto/tls"
	"fmt"
)

// serverTLS is the TLS configuration the topology asks for: nil (plain http) when it names no
// certificate.
func serverTLS(t *topology) (*tls.Config, error) {
	if t.TLSCert == "" && t.TLSKey == "" {
		return nil, nil
	}
	if t.TLSCert == "" || t.TLSKey == "" {
		return nil, fmt.Errorf("tls_cert and tls_key go together (one of them is empty)")
	}
	cert, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls_cert %s / tls_key %s: %s", t.TLSCert, t.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
