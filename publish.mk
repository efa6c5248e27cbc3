# iguardpublish: its tests start their own MQTT broker (Debian's mosquitto) on a loopback port,
# so make test installs it when it is missing. mosquitto-clients gives mosquitto_sub/_pub for
# looking at a running publisher by hand; openssl makes the certificates of the TLS test.
MQTT_PACKAGES := mosquitto mosquitto-clients openssl curl

.PHONY: mqtt-deps

mqtt-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(MQTT_PACKAGES)"
