package testenv

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

func TestRegistryServesAndStops(t *testing.T) {
	r := Registry(t, WithHtpasswd("ci", "s3cret"))
	resp, err := http.Get("http://" + r.Host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without credentials: got %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+r.Host+"/v2/", nil)
	req.SetBasicAuth("ci", "s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ with credentials: got %d, want 200", resp.StatusCode)
	}
	r.Stop()
	if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Stop")
	}
}

func TestDockerdAnswers(t *testing.T) {
	host := Dockerd(t)
	out, err := exec.Command("docker", "-H", host, "info", "--format", "{{.Driver}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker info: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) == "" {
		t.Fatal("docker info printed no storage driver")
	}
}
