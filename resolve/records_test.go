package resolve

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestRecordsTTL: the TTL of an answer is its records' smallest, aliases
// included; a name without records of the type keeps its zone's negative
// TTL, the smaller of the SOA's TTL and minimum; without a SOA, none is
// known.
func TestRecordsTTL(t *testing.T) {
	hdr := func(name string, typ uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
	}
	m := new(dns.Msg)
	m.Answer = []dns.RR{
		&dns.CNAME{Hdr: hdr("www.example.com.", dns.TypeCNAME, 20), Target: "api.example.com."},
		&dns.A{Hdr: hdr("api.example.com.", dns.TypeA, 300), A: net.ParseIP("192.0.2.1")},
		&dns.A{Hdr: hdr("other.example.com.", dns.TypeA, 5), A: net.ParseIP("192.0.2.9")}, // not on the chain
	}
	addrs, ttl, known, _ := records(m, "www.example.com", dns.TypeA)
	if len(addrs) != 1 || addrs[0].String() != "192.0.2.1" || ttl != 20*time.Second || !known {
		t.Errorf("through an alias: %v, %v, %v", addrs, ttl, known)
	}
	neg := new(dns.Msg)
	neg.Ns = []dns.RR{&dns.SOA{Hdr: hdr("example.com.", dns.TypeSOA, 900), Minttl: 60}}
	if addrs, ttl, known, _ := records(neg, "api.example.com", dns.TypeAAAA); len(addrs) != 0 || ttl != 60*time.Second || !known {
		t.Errorf("no AAAA, a SOA: %v, %v, %v", addrs, ttl, known)
	}
	if _, _, known, _ := records(new(dns.Msg), "api.example.com", dns.TypeAAAA); known {
		t.Error("no AAAA, no SOA: a TTL known")
	}
}
