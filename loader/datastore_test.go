package loader

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func key(plural, name string) string { return DatastorePrefix + CalicoPrefix + plural + "/" + name }

// TestDatastoreResources: resources as calicoctl stores them in etcd load
// as Calico files do, named by their keys: a default-tier policy's stored
// "default." prefix is Calico's, not its name; another tier's prefix
// stays; the tier label libcalico-go adds is taken; a resource whose kind
// or name is not its key's is refused at the key; a name in both the
// files and the datastore is an error naming both.
func TestDatastoreResources(t *testing.T) {
	srcs := []Source{
		{Path: "/etc/hostwall/local.hcl", Data: []byte("policy \"local\" {\n  ingress { action = \"allow\" }\n}\n")},
		{Path: key("hostendpoints", "web1-eth0"), Data: []byte(`{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"web1-eth0","uid":"9f1","creationTimestamp":"2026-12-06T10:00:00Z","labels":{"role":"web"}},"spec":{"node":"web1","interfaceName":"eth0","expectedIPs":["10.0.0.1"],"ports":null}}`)},
		{Path: key("tiers", "ops"), Data: []byte(`{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"ops"},"spec":{"order":10}}`)},
		{Path: key("globalnetworkpolicies", "default.allow-http"), Data: []byte(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.allow-http"},"spec":{"tier":"default","selector":"role == 'web'","ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[80]}}],"types":["Ingress"]}}`)},
		{Path: key("globalnetworkpolicies", "ops.ssh"), Data: []byte(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"ops.ssh","labels":{"projectcalico.org/tier":"ops"}},"spec":{"tier":"ops","ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[22]}}]}}`)},
		{Path: key("stagedglobalnetworkpolicies", "default.allow-http"), Data: []byte(`{"kind":"StagedGlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.allow-http"},"spec":{"stagedAction":"Delete"}}`)},
		{Path: key("globalnetworksets", "blocked"), Data: []byte(`{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"blocked","labels":{"list":"bad"}},"spec":{"nets":["192.0.2.0/24"]}}`)},
		{Path: key("felixconfigurations", "default"), Data: []byte(`{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"failsafeInboundHostPorts":[{"protocol":"TCP","port":22}]}}`)},
	}
	res, diags := Load(srcs)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg := res.Config
	var names []string
	for _, p := range cfg.Policies {
		names = append(names, p.Name+"/"+p.Tier+"/"+string(p.Staged))
	}
	if got, want := strings.Join(names, " "), "local/default/ allow-http/default/ ops.ssh/ops/ allow-http/default/Delete"; got != want {
		t.Errorf("policies %q, want %q", got, want)
	}
	if len(cfg.Endpoints) != 1 || cfg.Endpoints[0].Node != "web1" || cfg.Endpoints[0].Labels["role"] != "web" {
		t.Errorf("host endpoints: %+v", cfg.Endpoints)
	}
	if len(cfg.NetworkSets) != 1 || len(cfg.Tiers) != 1 || len(cfg.Failsafe.Inbound) != 1 {
		t.Errorf("sets %d, tiers %d, failsafe %+v", len(cfg.NetworkSets), len(cfg.Tiers), cfg.Failsafe.Inbound)
	}
	// Two keys may end in the same name: the hash tells them apart.
	swapped := []Source{{Path: key("hostendpoints", "x"), Data: []byte("a")}, {Path: key("globalnetworksets", "x"), Data: []byte("b")}}
	if HashSources(swapped) == HashSources([]Source{{Path: swapped[0].Path, Data: []byte("b")}, {Path: swapped[1].Path, Data: []byte("a")}}) {
		t.Error("HashSources does not tell two kinds' keys of one name apart")
	}

	for name, c := range map[string]struct {
		src  Source
		want string
	}{
		"kind not the key's": {Source{Path: key("hostendpoints", "p"), Data: []byte(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"}}`)},
			"The key is one of kind HostEndpoint (/calico/resources/v3/projectcalico.org/hostendpoints/), but the value's kind is \"GlobalNetworkPolicy\""},
		"name not the key's": {Source{Path: key("globalnetworksets", "a"), Data: []byte(`{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"b"}}`)},
			"metadata.name is \"b\", but the key names \"a\""},
		"a field wrong": {Source{Path: key("globalnetworkpolicies", "default.p"), Data: []byte(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.p"},"spec":{"ingress":[{"action":"allow"}]}}`)},
			"action \"allow\" is not Allow"},
		"not JSON":        {Source{Path: key("tiers", "t"), Data: []byte(`{"kind":`)}, ""},
		"empty":           {Source{Path: key("hostendpoints", "h"), Data: []byte(" \n")}, "holds no resource"},
		"an empty object": {Source{Path: key("hostendpoints", "h"), Data: []byte(`{}`)}, "holds no Calico resource"},
		"null":            {Source{Path: key("hostendpoints", "h"), Data: []byte(`null`)}, "holds no Calico resource"},
		"a list":          {Source{Path: key("hostendpoints", "h"), Data: []byte(`[]`)}, "holds no Calico resource"},
		"hostwall's own YAML": {Source{Path: key("hostendpoints", "z"), Data: []byte(`{"policy":{"evil":{"selector":"all()","ingress":[{"action":"allow"}]}}}`)},
			"holds no Calico resource"},
		"a key ending in .hcl": {Source{Path: key("hostendpoints", "y.hcl"), Data: []byte(`network_set "leak" { nets_file = "/etc/shadow" }`)}, ""},
		"a skipped kind": {Source{Path: key("hostendpoints", "p"), Data: []byte(`{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"}}`)},
			"but the value's kind is \"Profile\""},
		"a List": {Source{Path: key("hostendpoints", "l"), Data: []byte(`{"kind":"HostEndpointList","apiVersion":"projectcalico.org/v3","items":[]}`)},
			"but the value's kind is \"HostEndpointList\""},
		"two documents": {Source{Path: key("tiers", "t"), Data: []byte("kind: Tier\n---\nkind: Tier\n")}, "holds 2 documents"},
		"the tier label on an endpoint": {Source{Path: key("hostendpoints", "h"), Data: []byte(`{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"h","labels":{"projectcalico.org/tier":"x"}},"spec":{"node":"n","interfaceName":"eth0"}}`)},
			"reserved prefix"},
	} {
		_, diags := Load([]Source{c.src})
		if !diags.HasErrors() {
			t.Errorf("%s: loads", name)
			continue
		}
		d := diags.Errs()[0].(*hcl.Diagnostic)
		if d.Subject == nil || d.Subject.Filename != c.src.Path || !strings.Contains(d.Detail, c.want) {
			t.Errorf("%s: %s: %s — %s; want at %s, saying %q", name, d.Subject, d.Summary, d.Detail, c.src.Path, c.want)
		}
	}

	// Files and the datastore form one configuration; "default.web" and
	// "web" are one policy, in a file as in the datastore.
	_, diags = Load([]Source{{Path: "/etc/hostwall/web.yaml", Data: []byte("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: default.allow-http\n")}, srcs[3]})
	if d := diags.Errs(); len(d) != 1 || !strings.Contains(d[0].Error(), "Duplicate policy") {
		t.Errorf("default.allow-http in a file and in the datastore: %v", diags)
	}
	_, diags = Load([]Source{{Path: "/etc/hostwall/web.yaml", Data: []byte("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: allow-http\n")}, srcs[3]})
	if d := diags.Errs(); len(d) != 1 || !strings.Contains(d[0].Error(), "/etc/hostwall/web.yaml:4") || !strings.Contains(d[0].Error(), "etcd datastore form one configuration") {
		t.Errorf("a policy in the files and the datastore: %v", diags)
	}
}

// TestDatastoreKey: only keys of the kinds hostwall reads are its.
func TestDatastoreKey(t *testing.T) {
	for k, want := range map[string]string{
		CalicoPrefix + "hostendpoints/web1":                       "hostendpoints web1",
		DatastorePrefix + CalicoPrefix + "tiers/ops":              "tiers ops",
		CalicoPrefix + "workloadendpoints/ns/pod":                 "",
		CalicoPrefix + "globalnetworkpolicies/":                   "",
		CalicoPrefix + "globalnetworkpolicies/a/b":                "",
		"/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26":       "",
		"/calico/resources/v3/projectcalico.org.evil/tiers/x":     "",
		CalicoPrefix + "networkpolicies/default/knp.default.deny": "",
	} {
		plural, name, ok := DatastoreKey(k)
		got := ""
		if ok {
			got = plural + " " + name
		}
		if got != want {
			t.Errorf("DatastoreKey(%q) = %q, want %q", k, got, want)
		}
	}
}
