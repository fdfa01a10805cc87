package loader

// isCalico reports whether a YAML document is a Calico resource.
func isCalico(b *yamlBody) bool {
	entries, _ := b.entries()
	for _, kv := range entries {
		if keyOf(kv) == "apiVersion" {
			return true
		}
	}
	return false
}

func (b *builder) decodeCalico(body *yamlBody) {}
