package loader

import (
	"strings"

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

// checkDatastoreKey checks a datastore resource against its key: the kind
// its key names, and the name (Calico names a resource by its key).
func (b *builder) checkDatastoreKey(file, kind string, kindRange hcl.Range, m *calicoMeta) bool {
	plural, name, ok := DatastoreKey(file)
	if !ok {
		b.diags = append(b.diags, errAt(kindRange, "Not a key hostwall reads",
			"%s is not a key of a kind hostwall reads from the datastore (%s).", strings.TrimPrefix(file, DatastorePrefix), CalicoPrefix+"<plural>/<name>"))
		return false
	}
	if want := DatastoreKinds[plural]; kind != want {
		b.diags = append(b.diags, errAt(kindRange, "Kind not the key's",
			"The key holds %ss (%s), but kind is %q. Write the resource with calicoctl, or under the key of its kind.", want, plural, kind))
		return false
	}
	if m.name != name {
		b.diags = append(b.diags, errAt(m.nameRange, "Name not the key's",
			"metadata.name is %q, but the key names %q: Calico names a resource by its key. Write it with calicoctl, or make the two agree.", m.name, name))
		return false
	}
	return true
}

// clientPolicyName is the name Calico's clients show for a policy stored
// under name in the datastore: the stored name of a policy in the default
// tier carries "default." (libcalico-go names.TieredPolicyName), which
// calicoctl does not show (names.ClientTieredPolicyName); a policy of
// another tier keeps its tier's prefix.
func clientPolicyName(name string) string {
	if rest, ok := strings.CutPrefix(name, "default."); ok && rest != "" {
		return rest
	}
	return name
}
