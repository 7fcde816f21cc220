package startup

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ConfigFor takes what the check needs from an image's runtime config.
// platform is an OCI platform string such as "linux/arm/v7".
func ConfigFor(platform string, c v1.Config) Config {
	return Config{
		Platform:   platform,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
	}
}

// PlatformString renders a v1.Platform as "os/arch[/variant]".
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
