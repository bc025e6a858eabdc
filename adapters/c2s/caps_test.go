package c2s

import (
	"testing"

	"annals.im/annals/adapters/mux/muxtest"
)

// XEP-0115's own examples (§5.2 simple, §5.3 complex with an extended
// form) hash to their verification strings; a changed feature does not.
func TestVerifyCaps(t *testing.T) {
	simple := `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
		<identity category='client' name='Exodus 0.9.1' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/></query>`
	complexQ := `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
		<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
		<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
			<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
			<field var='os'><value>Mac</value></field>
			<field var='os_version'><value>10.5.1</value></field>
			<field var='software'><value>Psi</value></field>
			<field var='software_version'><value>0.11</value></field>
		</x></query>`
	for _, c := range []struct {
		name, q, ver string
		ok           bool
	}{
		{"simple", simple, "QgayPKawpkPSDYmwT/WM94uAlu0=", true},
		{"complex", complexQ, "q07IKJEyjvHSyhy//CH0CxmKi8w=", true},
		{"another string", simple, "q07IKJEyjvHSyhy//CH0CxmKi8w=", false},
	} {
		q, err := muxtest.Parse(c.q)
		if err != nil {
			t.Fatal(err)
		}
		features, ok := verifyCaps(*q, c.ver)
		if ok != c.ok || len(features) != 4 {
			t.Errorf("%s: verified %v, %d features; want %v, 4", c.name, ok, len(features), c.ok)
		}
	}
}
