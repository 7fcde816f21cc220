package scenario

import "github.com/hilproject/hil/pcapfixtures"

// BundledFixtures resolves fixture names through hil's pcapfixtures
// manifest (the files are embedded, so this works without the source tree).
func BundledFixtures() FixtureResolver { return bundled{} }

type bundled struct{}

func (bundled) Fixture(name string) (string, string, bool) {
	f, err := pcapfixtures.Lookup(name)
	if err != nil {
		return "", "", false
	}
	p, err := f.Path()
	if err != nil {
		return "", "", false
	}
	return p, f.SHA256, true
}

func (bundled) Names() []string {
	var ns []string
	for _, f := range pcapfixtures.Manifest() {
		ns = append(ns, f.Name)
	}
	return ns
}
