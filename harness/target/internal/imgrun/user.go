package imgrun

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Identity is the uid/gid an image user resolves to.
type Identity struct {
	UID, GID uint32
	Name     string // the user name when the image's passwd has one
	Home     string
}

// ResolveUser resolves an image config User ("", "name", "uid",
// "name:group", "uid:gid") against the image's /etc/passwd and /etc/group,
// the way Docker does at start. A name that the image does not know is an
// error (Docker fails the start with "unable to find user"); a numeric uid
// needs no passwd entry.
func ResolveUser(rootfs, user string) (Identity, error) {
	if user == "" {
		return Identity{Name: "root", Home: "/root"}, nil
	}
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	passwd, perr := readColonFile(filepath.Join(rootfs, "etc/passwd"))
	var id Identity
	if uid, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		id.UID = uint32(uid)
		id.GID = uint32(uid)
		for _, f := range passwd {
			if len(f) >= 6 && f[2] == userPart {
				id.Name, id.Home = f[0], f[5]
				if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					id.GID = uint32(g)
				}
				break
			}
		}
		if id.Name == "" {
			id.GID = 0 // Docker: a uid without passwd entry runs with gid 0
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 6 && f[0] == userPart {
				u, err1 := strconv.ParseUint(f[2], 10, 32)
				g, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return Identity{}, fmt.Errorf("image user %q: malformed /etc/passwd entry %q", user, strings.Join(f, ":"))
				}
				id = Identity{UID: uint32(u), GID: uint32(g), Name: f[0], Home: f[5]}
				found = true
				break
			}
		}
		if !found {
			if perr != nil {
				return Identity{}, fmt.Errorf("image user %q does not exist in the image: it has no readable /etc/passwd (%v); use a numeric uid or add the user", user, perr)
			}
			return Identity{}, fmt.Errorf("image user %q does not exist in the image's /etc/passwd (Docker fails the start with \"unable to find user %s\")", user, userPart)
		}
	}
	if hasGroup {
		if g, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			id.GID = uint32(g)
		} else {
			groups, gerr := readColonFile(filepath.Join(rootfs, "etc/group"))
			found := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == groupPart {
					g, err := strconv.ParseUint(f[2], 10, 32)
					if err != nil {
						return Identity{}, fmt.Errorf("image group %q: malformed /etc/group entry", groupPart)
					}
					id.GID = uint32(g)
					found = true
					break
				}
			}
			if !found {
				return Identity{}, fmt.Errorf("image group %q does not exist in the image's /etc/group (%v)", groupPart, gerr)
			}
		}
	}
	return id, nil
}

func readColonFile(p string) ([][]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}

// Reachable reports whether uid/gid can traverse every directory down to
// dir (search permission), e.g. whether an emulator running as the image
// user can open a rootfs that sits in root's cache. It names the first
// directory that stops it.
func Reachable(dir string, uid, gid uint32) (string, bool) {
	if uid == 0 {
		return "", true
	}
	p := filepath.Clean(dir)
	for {
		fi, err := os.Stat(p)
		if err != nil {
			return p, false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			perm := fi.Mode().Perm()
			var bit os.FileMode = 0o001
			switch {
			case st.Uid == uid:
				bit = 0o100
			case st.Gid == gid:
				bit = 0o010
			}
			if perm&bit == 0 {
				return p, false
			}
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", true
		}
		p = parent
	}
}
