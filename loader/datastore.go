package loader

import (
	"bytes"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/hashicorp/hcl/v2"
)

// Resources read from Calico's etcdv3 datastore load as sources of their
// own beside the directory's files: one per key, named DatastorePrefix +
// the key ("etcd:/calico/resources/v3/projectcalico.org/hostendpoints/web1"),
// holding the key's value, the resource as Calico stores it (JSON, which is
// YAML). Diagnostics then name the key, the line and column in its value,
// and Calico's field names; a generation records each as a file.

// DatastorePrefix starts the path of a source read from the datastore.
const DatastorePrefix = "etcd:"

// CalicoPrefix is where Calico's etcdv3 datastore keeps v3 resources:
// CalicoPrefix + plural + "/" + name (libcalico-go's model.ResourceKey).
const CalicoPrefix = "/calico/resources/v3/projectcalico.org/"

// DatastoreKinds are the kinds hostwall reads from the datastore, by the
// plural that names their keys.
var DatastoreKinds = map[string]string{
	"hostendpoints":               "HostEndpoint",
	"globalnetworkpolicies":       "GlobalNetworkPolicy",
	"stagedglobalnetworkpolicies": "StagedGlobalNetworkPolicy",
	"globalnetworksets":           "GlobalNetworkSet",
	"tiers":                       "Tier",
	"felixconfigurations":         "FelixConfiguration",
}

// IsDatastore reports whether a source's path names a datastore key.
func IsDatastore(path string) bool { return strings.HasPrefix(path, DatastorePrefix) }

// DatastoreKey splits a datastore source's path (or a bare key) into the
// plural of its kind and the resource's name; ok is false for a key that
// is not one of a kind hostwall reads (DatastoreKinds).
func DatastoreKey(path string) (plural, name string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimPrefix(path, DatastorePrefix), CalicoPrefix)
	if !found {
		return "", "", false
	}
	plural, name, found = strings.Cut(rest, "/")
	if !found || name == "" || strings.Contains(name, "/") || DatastoreKinds[plural] == "" {
		return "", "", false
	}
	return plural, name, true
}

// loadDatastore decodes a datastore key's value: exactly one Calico
// resource, of the kind its key names (a value that is empty, not a
// resource, a list, or a resource of another kind is refused at the key:
// skipping it would take away what the key held, a host endpoint say).
func (b *builder) loadDatastore(src Source) {
	key := strings.TrimPrefix(src.Path, DatastorePrefix)
	start := hcl.Range{Filename: src.Path, Start: hcl.Pos{Line: 1, Column: 1}, End: hcl.Pos{Line: 1, Column: 1}}
	if len(bytes.TrimSpace(src.Data)) == 0 {
		b.diags = append(b.diags, errAt(start, "Empty value",
			"The key %s holds no resource. Write one with calicoctl, or delete the key.", key))
		return
	}
	docs, diags := parseYAML(src)
	b.diags = append(b.diags, diags...)
	if diags.HasErrors() {
		return
	}
	if d := checkAliases(src.Path, docs); d != nil {
		b.diags = append(b.diags, d)
		return
	}
	if len(docs) != 1 {
		b.diags = append(b.diags, errAt(start, "Not one resource",
			"The key %s holds %d documents; a key of Calico's datastore holds one resource, as calicoctl writes it.", key, len(docs)))
		return
	}
	anchors := map[string]ast.Node{}
	body := &yamlBody{file: src.Path, node: docs[0], at: nodeRange(src.Path, docs[0]), anchors: anchors}
	if _, ok := unwrap(docs[0], anchors).(*ast.MappingNode); !ok || !isCalico(body) {
		b.diags = append(b.diags, errAt(body.at, "Not a Calico resource",
			"The key %s holds no Calico resource (a JSON object with apiVersion, kind, metadata and spec, as calicoctl writes it).", key))
		return
	}
	b.decodeCalico(body)
}

// checkDatastoreKind checks a datastore resource's kind against its key.
func (b *builder) checkDatastoreKind(file, kind string, kindRange hcl.Range) bool {
	plural, _, ok := DatastoreKey(file)
	if !ok {
		b.diags = append(b.diags, errAt(kindRange, "Not a key hostwall reads",
			"%s is not a key of a kind hostwall reads from the datastore (%s).", strings.TrimPrefix(file, DatastorePrefix), CalicoPrefix+"<plural>/<name>"))
		return false
	}
	if want := DatastoreKinds[plural]; kind != want {
		b.diags = append(b.diags, errAt(kindRange, "Kind not the key's",
			"The key is one of kind %s (%s%s/), but the value's kind is %q. Write the resource with calicoctl, or under the key of its kind.", want, CalicoPrefix, plural, kind))
		return false
	}
	return true
}

// checkDatastoreName checks a datastore resource's name against its key
// (Calico names a resource by its key).
func (b *builder) checkDatastoreName(file string, m *calicoMeta) bool {
	if _, name, _ := DatastoreKey(file); m.name != name {
		b.diags = append(b.diags, errAt(m.nameRange, "Name not the key's",
			"metadata.name is %q, but the key names %q: Calico names a resource by its key. Write it with calicoctl, or make the two agree.", m.name, name))
		return false
	}
	return true
}

// clientPolicyName is the name Calico's clients show for a policy named
// name in the default tier: the stored name carries "default."
// (libcalico-go names.TieredPolicyName), which calicoctl does not show
// (names.ClientTieredPolicyName) — "default.web" and "web" are one
// policy, in a file as in the datastore. A policy of another tier keeps
// its tier's prefix.
func clientPolicyName(name string) string {
	if rest, ok := strings.CutPrefix(name, "default."); ok && rest != "" {
		return rest
	}
	return name
}
