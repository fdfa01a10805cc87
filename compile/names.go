package compile

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/hostwall/hostwall/ruleset"
)

// Kernel names. Every chain and set name is a function of the logical
// object that no two objects share, whatever names the configuration
// gives them (docs/kernel.md, "Names"):
//
//   - A chain made for configuration objects joins its parts with '/',
//     which no configuration name may hold (names are letters, digits,
//     '.', '_' and '-'), so the parts, and so the objects, can be read back
//     from the name: hep/<endpoint>/<side>, hep/<endpoint>/<side>/t/<tier>,
//     pol/<policy>/<side>. The fixed chains hold no '/'.
//   - A set is named by what it is made from (kind, a hash, the family),
//     so that rules wanting the same set share one; a different set whose
//     short hash is taken gets the whole SHA-256 (setName).
//
// checkNames asserts both before a table leaves the compiler.

// maxKernelName is the longest chain or set name the kernel takes
// (NFT_NAME_MAXLEN, 256, with its NUL).
const maxKernelName = 255

// kernelName joins the parts of a chain's name with '/'. A name longer
// than the kernel takes keeps its first keepName bytes and ends in "//"
// and a hash of the whole: no joined name holds "//", as no part is
// empty.
func kernelName(parts ...string) string {
	name := strings.Join(parts, "/")
	if len(name) <= maxKernelName {
		return name
	}
	h := sha256.Sum256([]byte(name))
	return name[:keepName] + "//" + hashText(h[:10])
}

// keepName is how much of a long name stays readable (names are ASCII).
const keepName = 200

// setName names a set made from parts (its content, or what decides it):
// kind, a short hash of parts and the family suffix fam, when not empty.
// Equal parts share a name, and so one kernel set; different parts whose
// short hash is taken get the whole SHA-256, so no two sets made from
// different parts share a name.
func (c *compiler) setName(kind, fam string, parts ...string) string {
	key := strings.Join(parts, "\x00")
	h := sha256.Sum256([]byte(key))
	tail := ""
	if fam != "" {
		tail = "-" + fam
	}
	name := kind + "-" + hashText(h[:5]) + tail
	if prev, ok := c.setKeys[name]; ok && prev != key {
		name = kind + "-" + hashText(h[:]) + tail
	}
	c.setKeys[name] = key
	return name
}

// hashText is b in lower-case base32 without padding.
func hashText(b []byte) string {
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// checkNames asserts that every chain and every set of t has a name of
// its own, one the kernel takes: two objects of one name would be merged
// into one by the kernel, silently. A failure is a bug of hostwall's.
func checkNames(t *ruleset.Table) hcl.Diagnostics {
	var diags hcl.Diagnostics
	check := func(kind string, names []string) {
		seen := make(map[string]bool, len(names))
		for _, name := range names {
			why := ""
			switch {
			case seen[name]:
				why = "is given to two " + kind + "s"
			case name == "" || len(name) > maxKernelName:
				why = fmt.Sprintf("is not 1-%d bytes long", maxKernelName)
			}
			if why != "" {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Kernel names collide",
					Detail: fmt.Sprintf("The %s name %q %s. This is a bug of hostwall's: nothing was applied; please report it with the configuration.", kind, name, why)})
			}
			seen[name] = true
		}
	}
	chains := make([]string, len(t.Chains))
	for i, ch := range t.Chains {
		chains[i] = ch.Name
	}
	sets := make([]string, len(t.Sets))
	for i, st := range t.Sets {
		sets[i] = st.Name
	}
	check("chain", chains)
	check("set", sets)
	return diags
}
