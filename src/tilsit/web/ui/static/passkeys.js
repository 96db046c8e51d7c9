// WebAuthn for tilsit: add a passkey (account page) and log in with one (second-factor page).
// The server sends the options as JSON (binary fields base64url-encoded) and keeps the
// challenge in the session; this script only converts between JSON and the browser API.
// Requests carry the session's CSRF token in the X-CSRF-Token header.
"use strict";

(function () {
  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(text) {
    var status = document.getElementById("passkey-status");
    if (status) status.textContent = text;
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "The server refused (" + response.status + ").");
        return data;
      });
    });
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toBase64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(response.authenticatorData);
      out.response.signature = toBase64url(response.signature);
      if (response.userHandle) out.response.userHandle = toBase64url(response.userHandle);
    }
    return out;
  }

  function register(button) {
    var csrf = button.dataset.csrf;
    var labelInput = document.getElementById("passkey-label");
    say("Waiting for your passkey…");
    post(button.dataset.options, csrf)
      .then(function (options) {
        options.challenge = toBytes(options.challenge);
        options.user.id = toBytes(options.user.id);
        options.excludeCredentials = descriptors(options.excludeCredentials);
        return navigator.credentials.create({ publicKey: options });
      })
      .then(function (credential) {
        return post(button.dataset.verify, csrf, {
          credential: credentialJSON(credential),
          label: labelInput ? labelInput.value : "",
        });
      })
      .then(function (result) {
        say("Passkey added.");
        window.location.assign(result.redirect);
      })
      .catch(function (error) {
        say("The passkey was not added: " + error.message);
      });
  }

  function authenticate(button) {
    var csrf = button.dataset.csrf;
    say("Waiting for your passkey…");
    post(button.dataset.options, csrf)
      .then(function (options) {
        options.challenge = toBytes(options.challenge);
        options.allowCredentials = descriptors(options.allowCredentials);
        return navigator.credentials.get({ publicKey: options });
      })
      .then(function (credential) {
        return post(button.dataset.verify, csrf, credentialJSON(credential));
      })
      .then(function (result) {
        say("Logged in.");
        window.location.assign(result.redirect);
      })
      .catch(function (error) {
        say("The passkey did not work: " + error.message);
      });
  }

  function wire(id, action) {
    var button = document.getElementById(id);
    if (!button) return;
    if (!window.PublicKeyCredential) {
      button.disabled = true;
      say("This browser does not support passkeys.");
      return;
    }
    button.addEventListener("click", function () {
      action(button);
    });
  }

  wire("passkey-add", register);
  wire("passkey-login", authenticate);
})();
