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
