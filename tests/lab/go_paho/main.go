// A small Eclipse Paho Go (github.com/eclipse/paho.mqtt.golang) application that behaves like a
// field client, so sample logs show what a Go client writes when it fails. The library's four
// loggers and the application's own go to stdout through Go's log package with microseconds, in
// the layout Paho Go's examples and bug reports use: "[DEBUG] 2026/11/23 14:11:30.123456 ...".
//
// Built offline by the lab from Debian's golang-github-eclipse-paho.mqtt.golang-dev (GOPATH mode).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "broker URL (tcp:// or ssl://)")
	id := flag.String("id", "go-client", "MQTT client id")
	user := flag.String("user", "", "user name")
	pass := flag.String("pass", "", "password")
	cafile := flag.String("cafile", "", "CA certificates to verify the broker with")
	pub := flag.String("pub", "", "topic to publish to")
	sub := flag.String("sub", "", "topic to subscribe to")
	count := flag.Int("count", 3, "messages to publish")
	attempts := flag.Int("attempts", 1, "connection attempts")
	duration := flag.Duration("duration", 3*time.Second, "how long to stay connected")
	flag.Parse()

	flags := log.LstdFlags | log.Lmicroseconds
	mqtt.ERROR = log.New(os.Stdout, "[ERROR] ", flags)
	mqtt.CRITICAL = log.New(os.Stdout, "[CRIT]  ", flags)
	mqtt.WARN = log.New(os.Stdout, "[WARN]  ", flags)
	mqtt.DEBUG = log.New(os.Stdout, "[DEBUG] ", flags)
	app := log.New(os.Stdout, "[INFO]  ", flags)

	opts := mqtt.NewClientOptions().AddBroker(*broker).SetClientID(*id)
	opts.SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	if *user != "" {
		opts.SetUsername(*user).SetPassword(*pass)
	}
	if *cafile != "" {
		pem, err := os.ReadFile(*cafile)
		if err != nil {
			app.Printf("cannot read %s: %v", *cafile, err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts.SetTLSConfig(&tls.Config{RootCAs: pool})
	}
	app.Printf("paho.mqtt.golang client %s starting: broker %s, user %q", *id, *broker, *user)
	client := mqtt.NewClient(opts)
	var err error
	for attempt := 1; attempt <= *attempts; attempt++ {
		app.Printf("connecting to %s (attempt %d of %d)", *broker, attempt, *attempts)
		token := client.Connect()
		token.Wait()
		if err = token.Error(); err == nil {
			break
		}
		app.Printf("connect failed: %v", err)
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		os.Exit(1)
	}
	app.Printf("connected to %s", *broker)
	if *sub != "" {
		token := client.Subscribe(*sub, 1, func(_ mqtt.Client, m mqtt.Message) {
			app.Printf("received %d bytes on %s", len(m.Payload()), m.Topic())
		})
		token.Wait()
		app.Printf("subscribed to %s: %v", *sub, token.Error())
	}
	if *pub != "" {
		for i := 1; i <= *count; i++ {
			token := client.Publish(*pub, 1, false, fmt.Sprintf("%s #%d", *id, i))
			token.Wait()
			app.Printf("published #%d to %s: %v", i, *pub, token.Error())
			time.Sleep(300 * time.Millisecond)
		}
	}
	time.Sleep(*duration)
	client.Disconnect(250)
	app.Printf("disconnected")
}
