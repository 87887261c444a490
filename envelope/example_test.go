package envelope_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	"github.com/tenantcrypt/tenantcrypt/envelope"
)

func ExampleSeal() {
	// In the service the key comes from the keyring; build the AEAD once
	// per data key.
	key := bytes.Repeat([]byte{0x42}, envelope.KeySize)
	aead, err := envelope.NewAEAD(key)
	if err != nil {
		log.Fatal(err)
	}
	id, err := envelope.NewKeyID()
	if err != nil {
		log.Fatal(err)
	}
	ctx := envelope.Context{"purpose": "db-password", "service": "billing"}

	c, err := envelope.Seal(aead, "acme", id, ctx, []byte("s3cret"))
	if err != nil {
		log.Fatal(err)
	}
	stored, err := c.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}

	// Later: parse what was stored, and open it with the same tenant and
	// context.
	parsed, err := envelope.ParseCiphertext(stored)
	if err != nil {
		log.Fatal(err)
	}
	plaintext, err := envelope.Open(aead, "acme", parsed, ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes stored, opened: %s\n", len(stored), plaintext)

	// Another context (or tenant, or key) does not open it, and says
	// nothing about why.
	_, err = envelope.Open(aead, "acme", parsed, envelope.Context{"purpose": "other"})
	fmt.Println(errors.Is(err, envelope.ErrDecrypt))
	// Output:
	// 52 bytes stored, opened: s3cret
	// true
}

func ExampleFormatText() {
	id, err := envelope.ParseKeyID("00112233445566778899aabbccddeeff")
	if err != nil {
		log.Fatal(err)
	}
	b, err := envelope.Handle{KeyID: id}.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	s, err := envelope.FormatText(envelope.InternalPrefix("acme"), b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s)

	prefix, binary, err := envelope.ParseText(s)
	if err != nil {
		log.Fatal(err)
	}
	h, err := envelope.ParseHandle(binary)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(prefix, h.KeyID)
	// Output:
	// #QLIKv1#:acme:AQIAESIzRFVmd4iZqrvM3e7_
	// #QLIKv1#:acme 00112233445566778899aabbccddeeff
}

func ExampleSealer() {
	key := bytes.Repeat([]byte{0x42}, envelope.KeySize)
	aead, err := envelope.NewAEAD(key)
	if err != nil {
		log.Fatal(err)
	}
	id, err := envelope.NewKeyID()
	if err != nil {
		log.Fatal(err)
	}
	ctx := envelope.Context{"purpose": "batch"}

	// One Sealer and one Opener for many messages; the buffers are
	// reused from one message to the next.
	sealer, err := envelope.NewSealer(aead, "acme", id)
	if err != nil {
		log.Fatal(err)
	}
	opener, err := envelope.NewOpener(aead, "acme")
	if err != nil {
		log.Fatal(err)
	}
	var bin, text, back, plaintext []byte
	for _, msg := range []string{"first", "second"} {
		if bin, err = sealer.AppendSeal(bin[:0], ctx, []byte(msg)); err != nil {
			log.Fatal(err)
		}
		if text, err = envelope.AppendText(text[:0], envelope.InternalPrefix("acme"), bin); err != nil {
			log.Fatal(err)
		}
		// The text form goes into JSON as it is; read it back.
		if back, err = envelope.AppendParseText(back[:0], text); err != nil {
			log.Fatal(err)
		}
		if plaintext, err = opener.AppendOpen(plaintext[:0], back, ctx); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d bytes, opened: %s\n", len(bin), plaintext)
		clear(plaintext) // the caller zeroes plaintext before reusing the buffer
	}
	// Output:
	// 51 bytes, opened: first
	// 52 bytes, opened: second
}
