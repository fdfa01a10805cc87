package testns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EtcdCluster is a real etcd cluster (Debian's etcd-server) of members on
// loopback, its data in the test's temporary directory, stopped when the
// test ends.
type EtcdCluster struct {
	t       testing.TB
	members []*etcdMember
	cluster string
	// TLS, when set, is the cluster's certificates: clients connect over
	// TLS with a client certificate, whose common name is their etcd user
	// once auth is enabled; Ctl is user root.
	TLS *EtcdCerts
}

type etcdMember struct {
	name, client, peer, dir string
	cmd                     *exec.Cmd
	log                     *strings.Builder
}

// Etcd starts an etcd cluster of n members and returns it once it is
// healthy.
func Etcd(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	return startEtcd(t, n, false)
}

// EtcdTLS is Etcd with TLS between clients and members, and client
// certificates required.
func EtcdTLS(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	return startEtcd(t, n, true)
}

func startEtcd(t testing.TB, n int, tls bool) *EtcdCluster {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatal("etcd is not installed (scripts/deps.sh test installs etcd-server and etcd-client)")
	}
	c := &EtcdCluster{t: t}
	base := t.TempDir()
	scheme := "http://"
	if tls {
		c.TLS = newEtcdCerts(t, filepath.Join(base, "certs"))
		scheme = "https://"
	}
	var peers []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("m%d", i), client: scheme + freePort(t), peer: "http://" + freePort(t),
			dir: filepath.Join(base, fmt.Sprintf("m%d", i))}
		c.members = append(c.members, m)
		peers = append(peers, m.name+"="+m.peer)
	}
	c.cluster = strings.Join(peers, ",")
	for i := range c.members {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Kill(i)
		}
	})
	c.AwaitHealthy()
	return c
}

// freePort is a loopback address with a port free now.
func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client)
	}
	return out
}

// Start starts member i (again: with its data, as it was).
func (c *EtcdCluster) Start(i int) {
	c.t.Helper()
	m := c.members[i]
	m.log = &strings.Builder{}
	m.cmd = exec.Command("etcd", "--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", c.cluster, "--initial-cluster-state", "new", "--initial-cluster-token", filepath.Base(filepath.Dir(m.dir)),
		"--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn")
	if c.TLS != nil {
		m.cmd.Args = append(m.cmd.Args, "--cert-file", c.TLS.ServerCert, "--key-file", c.TLS.ServerKey,
			"--trusted-ca-file", c.TLS.CA, "--client-cert-auth")
	}
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// Kill kills member i at once (SIGKILL), as a crash would.
func (c *EtcdCluster) Kill(i int) {
	m := c.members[i]
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
}

// Wipe kills member i and removes its data: started again, it is a new
// member of a new cluster at the same address (an etcd rebuilt, its
// revisions starting over).
func (c *EtcdCluster) Wipe(i int) {
	c.Kill(i)
	if err := os.RemoveAll(c.members[i].dir); err != nil {
		c.t.Fatal(err)
	}
}

// AwaitHealthy waits until every running member answers with a leader.
func (c *EtcdCluster) AwaitHealthy() {
	c.t.Helper()
	var eps []string
	for _, m := range c.members {
		if m.cmd != nil {
			eps = append(eps, m.client)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("etcdctl", append(c.tlsArgs(), "--endpoints", strings.Join(eps, ","), "endpoint", "health")...).CombinedOutput()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd is not healthy: %v\n%s\n%s", err, out, c.logs())
		}
		time.Sleep(100 * time.Millisecond) // until the members elect a leader
	}
}

func (c *EtcdCluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		if m.log != nil {
			fmt.Fprintf(&b, "--- %s:\n%s\n", m.name, m.log.String())
		}
	}
	return b.String()
}

// Ctl runs etcdctl against the running members and returns its output.
func (c *EtcdCluster) Ctl(args ...string) string {
	c.t.Helper()
	var eps []string
	for _, m := range c.members {
		if m.cmd != nil {
			eps = append(eps, m.client)
		}
	}
	out, err := exec.Command("etcdctl", append(append(c.tlsArgs(), "--endpoints", strings.Join(eps, ",")), args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Revision is the cluster's current revision.
func (c *EtcdCluster) Revision() int64 {
	c.t.Helper()
	out := c.Ctl("endpoint", "status", "--write-out", "fields")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, `"Revision" : `); ok {
			var r int64
			fmt.Sscan(v, &r)
			return r
		}
	}
	c.t.Fatalf("no revision in etcdctl endpoint status:\n%s", out)
	return 0
}

// tlsArgs are etcdctl's flags to connect as root (none without TLS).
func (c *EtcdCluster) tlsArgs() []string {
	if c.TLS == nil {
		return nil
	}
	cert, key := c.TLS.Client("root")
	return []string{"--cacert", c.TLS.CA, "--cert", cert, "--key", key}
}

// EtcdCerts are a test CA's files: the CA, the members' certificate (for
// 127.0.0.1), and client certificates made on demand.
type EtcdCerts struct {
	CA, ServerCert, ServerKey string
	dir                       string
	ca                        *x509.Certificate
	caKey                     *ecdsa.PrivateKey
	t                         testing.TB
}

func newEtcdCerts(t testing.TB, dir string) *EtcdCerts {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostwall test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	c := &EtcdCerts{dir: dir, ca: ca, caKey: key, t: t, CA: filepath.Join(dir, "ca.pem")}
	writePEM(t, c.CA, "CERTIFICATE", der)
	c.ServerCert, c.ServerKey = c.issue("server", true)
	return c
}

// Client is the certificate and key of a client whose common name is cn.
func (c *EtcdCerts) Client(cn string) (cert, key string) {
	cert = filepath.Join(c.dir, cn+".pem")
	if _, err := os.Stat(cert); err == nil {
		return cert, filepath.Join(c.dir, cn+"-key.pem")
	}
	return c.issue(cn, false)
}

func (c *EtcdCerts) issue(cn string, server bool) (string, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
	if err != nil {
		c.t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, keyPath := filepath.Join(c.dir, cn+".pem"), filepath.Join(c.dir, cn+"-key.pem")
	writePEM(c.t, cert, "CERTIFICATE", der)
	writePEM(c.t, keyPath, "EC PRIVATE KEY", kder)
	return cert, keyPath
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
