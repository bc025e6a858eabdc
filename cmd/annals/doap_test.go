package main

import (
	"encoding/xml"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// annals.doap (the XSF's machine-readable description of a server) and
// the README's table of supported XEPs name the same XEPs, with the same
// versions and statuses.
func TestDOAP(t *testing.T) {
	b, err := os.ReadFile("../../annals.doap")
	if err != nil {
		t.Fatal(err)
	}
	var doap struct {
		XEPs []struct {
			XEP struct {
				Resource string `xml:"http://www.w3.org/1999/02/22-rdf-syntax-ns# resource,attr"`
			} `xml:"https://linkmauve.fr/ns/xmpp-doap# xep"`
			Status  string `xml:"https://linkmauve.fr/ns/xmpp-doap# status"`
			Version string `xml:"https://linkmauve.fr/ns/xmpp-doap# version"`
		} `xml:"Project>implements>SupportedXep"`
	}
	if err := xml.Unmarshal(b, &doap); err != nil {
		t.Fatalf("annals.doap: %v", err)
	}
	var fromDOAP []string
	for _, x := range doap.XEPs {
		n := strings.TrimSuffix(strings.TrimPrefix(x.XEP.Resource, "https://xmpp.org/extensions/xep-"), ".html")
		fromDOAP = append(fromDOAP, n+" "+x.Version+" "+x.Status)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| \[XEP-(\d{4})\]\([^)]*\) \| [^|]+ \| ([^|]+) \| ([^|]+) \|`)
	var fromReadme []string
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		v := strings.TrimSpace(m[2])
		if v == "—" {
			v = ""
		}
		fromReadme = append(fromReadme, m[1]+" "+v+" "+strings.TrimSpace(m[3]))
	}
	if len(fromDOAP) == 0 || !slices.Equal(fromDOAP, fromReadme) {
		t.Errorf("annals.doap:\n%q\nthe README:\n%q", fromDOAP, fromReadme)
	}
}
