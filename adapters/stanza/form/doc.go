// Package form reads the data forms (XEP-0004) clients submit: the MAM
// query (XEP-0313 §4.1.1), a room's configuration (XEP-0045 §10.2) and a
// publication's options (XEP-0223) are all read through Parse, so that the
// rules of XEP-0004 and XEP-0068, and the bounds that keep a hostile form
// from costing more than a small one, live in one place. Each feature
// then decides what its fields mean.
//
// Parse takes the form as the stream reader kept it (a stanza.Element, its
// children as re-serialized bytes) and reads them as a token stream, so a
// form past the bounds is refused at the first field or value too many,
// before the rest is looked at.
//
// mellium.im/xmpp/form (v0.22.0) reads forms too, but not as needed here:
// Data.UnmarshalXML collects every field without a bound; it refuses any
// child of <x/> other than title, instructions and field (a <reported/>,
// or an extension element); it accepts duplicate vars, fields without a
// var and unknown field or form types; and its typed getters trust the
// type attribute the submitter chose (a list-multi "ids" sent without a
// type reads as one string). What is left, Raw(var), is the little this
// package does besides the checks.
package form
