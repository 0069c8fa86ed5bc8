// rktverify checks a detached signature the way rkt's keystore does (pkg/keystore checkSignature):
// golang.org/x/crypto/openpgp, armored keyring, armored signature first, binary on io.EOF.
// Usage: rktverify KEYRING.asc DATA SIGNATURE
// Prints GOOD <fingerprint> (exit 0), BAD <error> (exit 1) or KEYRING-ERROR <error> (exit 3).
package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/openpgp"
)

func main() {
	keys, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	ring, err := openpgp.ReadArmoredKeyRing(keys)
	if err != nil {
		fmt.Println("KEYRING-ERROR", err)
		os.Exit(3)
	}
	data, _ := os.Open(os.Args[2])
	sig, _ := os.Open(os.Args[3])
	signer, err := openpgp.CheckArmoredDetachedSignature(ring, data, sig)
	if err == io.EOF {
		data.Seek(0, 0)
		sig.Seek(0, 0)
		signer, err = openpgp.CheckDetachedSignature(ring, data, sig)
	}
	if err != nil {
		fmt.Println("BAD", err)
		os.Exit(1)
	}
	fmt.Printf("GOOD %x\n", signer.PrimaryKey.Fingerprint)
}
