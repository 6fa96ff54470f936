"""SHA-256 digests of the SubjectPublicKeyInfo of well-known public root CAs.

Generated, do not edit: regenerate with
``python -m asgi_mtls.validation.public_roots /etc/ssl/certs/ca-certificates.crt``
(source: 144 certificates, 143 keys; file SHA-256
a10a7d62383af00eafebe77a468547c85f02b2ba1d30c5cbdfbbbd221c1abdc1).
"""

from __future__ import annotations

from typing import Final

PUBLIC_ROOT_SPKI_SHA256: Final = frozenset(
    bytes.fromhex(digest)
    for digest in (
        # CN=COMODO Certification Authority,O=COMODO CA Limited,L=Salford,ST=Greater Manchester,C=GB
        "006d7be7555dd82026442c4f1a27a80e89a1989cb87b34448ed2194c18196d5e",
        # CN=XRamp Global Certification Authority,O=XRamp Security Services Inc,OU=www.xrampsecur...
        "051cf9fa95e40e9b83edaeda6961f6168c7879c4660172479cdd51ab03cea62b",
        # C=ES,O=ACCV,OU=PKIACCV,CN=ACCVRAIZ1
        "05570ae6eb0fceb4210e6db79486b7094caf200401e149b6677441b5f25e449b",
        # CN=IdenTrust Commercial Root CA 1,O=IdenTrust,C=US
        "07e854f26a7cbd389927aa041bfef1b6cd21dd143818ad947dc655a9e587fe88",
        # CN=GlobalSign,O=GlobalSign,OU=GlobalSign ECC Root CA - R4
        "08b3a6335fce5ef48f8f0e543986c07fd18a3b1226129f61864bbd5bdd1f1cc9",
        # CN=ISRG Root X1,O=Internet Security Research Group,C=US
        "0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3",
        # CN=QuoVadis Root CA 3,O=QuoVadis Limited,C=BM
        "0c7acaa710226720bbc940349ee2e6148652a89dbf406a232c895f6dc78ebb9a",
        # CN=Sectigo Public Server Authentication Root R46,O=Sectigo Limited,C=GB
        "0e8bb18bbeefb381be21bfc1a206d317298462ad104855f04a0542699708d3d4",
        # CN=TeliaSonera Root CA v1,O=TeliaSonera
        "10ba3485ca8bb6880ab9531a4063e4001555561c7f2e055165f49b2d74fc5f6b",
        # CN=UCA Global G2 Root,O=UniTrust,C=CN
        "1255cabe8152fa64df942f7a47417e29f96c1ce11bf8c84ecbe2815cc1280810",
        # CN=OISTE WISeKey Global Root GB CA,OU=OISTE Foundation Endorsed,O=WISeKey,C=CH
        "149f2ee63b9a5e5803240a770dc991fc2e3445e62831c245a49bc4f1f738ff9c",
        # CN=DigiCert Assured ID Root G3,OU=www.digicert.com,O=DigiCert Inc,C=US
        "15eed339594b304f8cf847b477371d8d6fec61f4db2b01af589e7c53b35cae4c",
        # OU=Starfield Class 2 Certification Authority,O=Starfield Technologies\, Inc.,C=US
        "15f14ac45c9c7da233d3479164e8137fe35ee0f38ae858183f08410ea82ac4b4",
        # CN=Entrust.net Certification Authority (2048),OU=(c) 1999 Entrust.net Limited,OU=www.en...
        "1ea3c5e43ed66c2da2983a42a4a79b1e906786ce9f1b58621419a00463a87d38",
        # CN=Certainly Root E1,O=Certainly,C=US
        "1ef64625daa2e5d433d7449ae31a200d1025e0012a8fecfa70932f8b599b75dd",
        # CN=USERTrust ECC Certification Authority,O=The USERTRUST Network,L=Jersey City,ST=New J...
        "2021917e98263945c859c43f1d73cb4139053c414fa03ca3bc7ee88614298f3b",
        # CN=DigiCert Assured ID Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US
        "23f2edff3ede90259a9e30f40af8f912a5e5b3694e6938440341f6060e014ffa",
        # CN=Hongkong Post Root CA 3,O=Hongkong Post,L=Hong Kong,ST=Hong Kong,C=HK
        "2541e53ba5b3b07acbe7097ac4a03e040c11cf7a6d4a67cb213d558b50167a06",
        # CN=Secure Global CA,O=SecureTrust Corporation,C=US
        "2596904dc4d699ae20c2cef4dce47f285937d77464ac370746f52dea76ba0c28",
        # CN=Actalis Authentication Root CA,O=Actalis S.p.A./03358520967,L=Milan,C=IT
        "25d4913cf587097414d29d26f6c1b1942cd6d64eaf45d0fcf81526adba96d324",
        # OU=Security Communication RootCA1,O=SECOM Trust.net,C=JP
        "2a4212605aa3e8aecb0fc19806cf3b40b53b95f1a34dbbd6e3ed27230324abb3",
        # CN=Go Daddy Root Certificate Authority - G2,O=GoDaddy.com\, Inc.,L=Scottsdale,ST=Arizon...
        "2a8f2d8af0eb123898f74c866ac3fa669054e23c17bc7a95bd0234192dc635d0",
        # CN=Starfield Services Root Certificate Authority - G2,O=Starfield Technologies\, Inc.,L...
        "2b071c59a0a0ae76b0eadb2bad23bad4580b69c3601b630c2eaf0613afa83f92",
        # CN=GlobalSign Root CA,OU=Root CA,O=GlobalSign nv-sa,C=BE
        "2bcee858158cf5465fc9d76f0dfa312fef25a4dca8501da9b46b67d1fbfa1b64",
        # CN=Trustwave Global Certification Authority,O=Trustwave Holdings\, Inc.,L=Chicago,ST=Il...
        "2e06cae1fc20b200e6fb748557a4444bec9317dfff2e4151669e0f7944f0a9e0",
        # OU=AC RAIZ FNMT-RCM,O=FNMT-RCM,C=ES
        "2fc5667a4b9a2678ed6ac6ad25465fcbf6094bfcd9504097c7a8fa47ade5e888",
        # CN=AffirmTrust Premium ECC,O=AffirmTrust,C=US
        "3219b09114ff495a3eb6eb00c2efeab34002ae5f0a56c7679ea087a3fa037e4f",
        # CN=Security Communication ECC RootCA1,O=SECOM Trust Systems CO.\,LTD.,C=JP
        "3329bfa13b6007ab5fc3713f0acb289426e2fbc99cc5c110a914b139571600b6",
        # OU=Security Communication RootCA2,O=SECOM Trust Systems CO.\,LTD.,C=JP
        "3380709af3b096be3cc2a40548142c0a520028db09e2cb77ae2206616ab6cbb4",
        # CN=SSL.com EV Root Certification Authority ECC,O=SSL Corporation,L=Houston,ST=Texas,C=US
        "348767cdad3bdd28b2b8dd5351aec30c68cec5cd69d276df3827dbc4f5806464",
        # CN=Microsoft ECC Root Certificate Authority 2017,O=Microsoft Corporation,C=US
        "35f53ce1264611e03340fe37e1ec7d4cc986c5613dca70fd04aa44545f2daf28",
        # CN=Amazon Root CA 3,O=Amazon,C=US
        "36abc32656acfc645c61b71613c4bf21c787f5cabbee48348d58597803d7abc9",
        # CN=Hongkong Post Root CA 1,O=Hongkong Post,C=HK
        "36c22314131a5fbf1b70ea4ccf4bc13a777d938ec65e1da24e3c2cfd01d3d163",
        # CN=Entrust Root Certification Authority - G4,OU=(c) 2015 Entrust\, Inc. - for authorize...
        "36d7c79f3d089a0ff79972d90923dea5ca76b4ccbaf7c2751cb152e9494f52d0",
        # CN=emSign Root CA - G1,O=eMudhra Technologies Limited,OU=emSign PKI,C=IN
        "376a1a7082a593dccc20d561d119e9ab8d30f11cc321d0a37fa41f0df284e01c",
        # CN=Autoridad de Certificacion Firmaprofesional CIF A62634068,C=ES
        "3b0d73b4be4a854adc3e51d7ef9fa48aefbb2cdd824d67bdc7d7d09a2abc2d43",
        # CN=Certainly Root R1,O=Certainly,C=US
        "3f93f3fcf79d225d213eef6a4a3f5885cf84fe3d7a7a3c11553517688c0e2100",
        # CN=SwissSign Gold CA - G2,O=SwissSign AG,C=CH
        "40fcfc28875dccbfebcbdf6cd7433312da63c4efcf3bd7b1b505c22020ae0274",
        # CN=GTS Root R3,O=Google Trust Services LLC,C=US
        "4179edd981ef747477b49626408af43daa2ca7ab7f9e082c1060f84096774348",
        # CN=e-Szigno Root CA 2017,2.5.4.97=VATHU-23584497,O=Microsec Ltd.,L=Budapest,C=HU
        "42431627ea76cc78697f915e3455b1b2ec82ff2f6380ee6423ef3c0840b7e631",
        # CN=AC RAIZ FNMT-RCM SERVIDORES SEGUROS,2.5.4.97=VATES-Q2826004J,OU=Ceres,O=FNMT-RCM,C=ES
        "453b74809b69019627f2f843001db5950cdd1d45371053e7f3dfdbc3714113c6",
        # CN=Trustwave Global ECC P256 Certification Authority,O=Trustwave Holdings\, Inc.,L=Chic...
        "497128fc90656b87290482b223efb72240fe9c421e79938de5f8110cb0be9056",
        # CN=QuoVadis Root CA 2 G3,O=QuoVadis Limited,C=BM
        "4a49edbd2f8f8230bd5592b313573fe1c172a45fa98011cc1eddbb36ade3fce5",
        # CN=Custom Artifactory CA
        "50050e2386a728a71d4e0bb40478d53b040b04b0e6ae4b304663649afff2af4e",
        # CN=Hellenic Academic and Research Institutions RootCA 2015,O=Hellenic Academic and Rese...
        "50cc86ba96db3263c79a43ead07553d9f56659e6907e72d8c026637a1cdc85dc",
        # CN=Certigna,O=Dhimyotis,C=FR
        "510d20e5c47f63cf666b20f61af62bc099a42ac824ffa443a2da7c90b1808a91",
        # CN=TUBITAK Kamu SM SSL Kok Sertifikasi - Surum 1,OU=Kamu Sertifikasyon Merkezi - Kamu S...
        "55e00be277ceb0545299f24fd9f877e2acf32852db43ffcd29bca74b39b4c9fa",
        # CN=GTS Root R2,O=Google Trust Services LLC,C=US
        "55f77de41c03792428f8d518c55104225be43a5598d926a528ad653e1ccec7bf",
        # OU=Go Daddy Class 2 Certification Authority,O=The Go Daddy Group\, Inc.,C=US
        "5632d97bfa775bf3c99ddea52fc2553410864016729c52dd6524c8a9c3b4489f",
        # CN=E-Tugra Global Root CA ECC v3,OU=E-Tugra Trust Center,O=E-Tugra EBG A.S.,L=Ankara,C=TR
        "56f2ea8684106d0c73333951059d2bff9ace0a9934f015c5d84c5a959dfbb3cc",
        # CN=IdenTrust Public Sector Root CA 1,O=IdenTrust,C=US
        "58dd61feb36ea7d258724371709149cb121337864cacb2d0999ad20739d06477",
        # CN=Buypass Class 2 Root CA,O=Buypass AS-983163327,C=NO
        "5955ae291574a931342cf7450e16652ede1e0fb3097e1571dfac11c915601564",
        # CN=DigiCert Trusted Root G4,OU=www.digicert.com,O=DigiCert Inc,C=US
        "59df317bfa9f4f0ab7ca514d7772296aa2c765b87664d08b96e57399e364729c",
        # CN=DigiCert High Assurance EV Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US
        "5a889647220e54d6bd8a16817224520bb5c78e58984bd570506388b9de0f075f",
        # CN=UCA Extended Validation Root,O=UniTrust,C=CN
        "5c41a73ab2c35dfcd771f6fd6e3e8fac9b469d386cadda56a95b646eb48cca34",
        # CN=D-TRUST BR Root CA 1 2020,O=D-Trust GmbH,C=DE
        "603f76f28c9feba83ec751edb66c8d7523ea40fe49fe74427629f50dabbcf55a",
        # CN=T-TeleSec GlobalRoot Class 2,OU=T-Systems Trust Center,O=T-Systems Enterprise Servic...
        "6106c0e3a0a299831875127bd7d3cc1859803d511cac11eb6e0840dd166fc10e",
        # 1.2.840.113549.1.9.1=info@e-szigno.hu,CN=Microsec e-Szigno Root CA 2009,O=Microsec Ltd....
        "616167201433aea6c8e5e3070afcaf6749188f814bd1abb179ae8dad3abf26ec",
        # OU=ePKI Root Certification Authority,O=Chunghwa Telecom Co.\, Ltd.,C=TW
        "62554c17005543b237215f04268dcd2fd1c470240ad3c8660e25ae2c59630f55",
        # CN=Baltimore CyberTrust Root,OU=CyberTrust,O=Baltimore,C=IE
        "63d9af9b47b1064d49a10e7b7fd566dbc8caa399459bfc2829c571ad8c6ef34a",
        # CN=Certum Trusted Root CA,OU=Certum Certification Authority,O=Asseco Data Systems S.A.,...
        "681dc482c296c8402c6ebb20e68309a3bc846523ae34b984a84ee697a3312db7",
        # CN=GlobalSign,O=GlobalSign,OU=GlobalSign Root CA - R6
        "682747f8ba621b87cdd3bc295ed5cabce722a1c0c0363d1d68b38928d2787f1e",
        # CN=HARICA TLS RSA Root CA 2021,O=Hellenic Academic and Research Institutions CA,C=GR
        "693c9aa6b245b3b0261637750863eadb6c248a16e52d6f4bc90c86bbf32d7042",
        # CN=DigiCert TLS RSA4096 Root G5,O=DigiCert\, Inc.,C=US
        "6a97b51c8219e93e5dec64bad5806cdeb0f8355be47e757010b702456e01aafd",
        # CN=Certum Trusted Network CA 2,OU=Certum Certification Authority,O=Unizeto Technologies...
        "6b3b57e9ec88d1bb3d01637ff33c7698b3c9758255e9f01ea9178f3e7f3b2b52",
        # CN=AffirmTrust Commercial,O=AffirmTrust,C=US
        "6c464b9a5b233a5e874da765c26f045010d2ddcff45794f0b4c7e4aafa501495",
        # CN=Entrust Root Certification Authority,OU=(c) 2006 Entrust\, Inc.,OU=www.entrust.net/C...
        "6dbfae00d37b9cd73f8fb47de65917af00e0dddf42dbceac20c17c0275ee2095",
        # CN=SZAFIR ROOT CA2,O=Krajowa Izba Rozliczeniowa S.A.,C=PL
        "6e364b6133deefdcbb21273c5f445a20afbc05038d5b021c0c2153039016345b",
        # CN=CA Disig Root R2,O=Disig a.s.,L=Bratislava,C=SK
        "702116ccd8bf23e16466f0e0dba0ed6a239a9c1cd6a8f5a66b39af3595020385",
        # CN=GlobalSign,O=GlobalSign,OU=GlobalSign Root CA - R3
        "706bb1017c855c59169bad5c1781cf597f12d2cad2f63d1a4aa37493800ffb80",
        # CN=ISRG Root X2,O=Internet Security Research Group,C=US
        "762195c225586ee6c0237456e2107dc54f1efc21f61a792ebd515913cce68332",
        # CN=Entrust Root Certification Authority - G2,OU=(c) 2009 Entrust\, Inc. - for authorize...
        "76ee8590374c715437bbca6bba6028eadde2dc6dbbb8c3f610e851f11d1ab7f5",
        # CN=SecureTrust CA,O=SecureTrust Corporation,C=US
        "77290717614b25f12964ebdb38b5f83caadc0f6c36b0777f880fc6dee1d339cc",
        # CN=NAVER Global Root Certification Authority,O=NAVER BUSINESS PLATFORM Corp.,C=KR
        "786ffa578618c3b9a311175e50816f4dda0605c3869f296ebc5943bf09f4e904",
        # CN=HiPKI Root CA - G1,O=Chunghwa Telecom Co.\, Ltd.,C=TW
        "79caaf5347e6e4a94c8e78a98496fc74020f809ede13f220fab6104c8ded329f",
        # CN=TrustCor ECA-1,OU=TrustCor Certificate Authority,O=TrustCor Systems S. de R.L.,L=Pan...
        "7afe4b071a2f1f46f8ba944a26d584d5960b92fb48c3ba1b7cab84905f32aacd",
        # CN=SSL.com EV Root Certification Authority RSA R2,O=SSL Corporation,L=Houston,ST=Texas,...
        "7cd67c248f69d83fc2f9bb01dcb1f7ad67a363d046043796d0984c3a231f6bb0",
        # CN=GlobalSign,O=GlobalSign,OU=GlobalSign ECC Root CA - R5
        "7e0ead76bb6819dc2f54511a84354f6e8b307b9dd82058ea6c004f01d9dda5df",
        # CN=Amazon Root CA 2,O=Amazon,C=US
        "7f4296fc5b6a4e3b35d3c369623e364ab1af381d8fa7121533c9d6c633ea2461",
        # CN=Starfield Root Certificate Authority - G2,O=Starfield Technologies\, Inc.,L=Scottsda...
        "808d68b3fab4884a5f971ace7d10550d7a95a163774f3ec36afffb213fbe4c74",
        # CN=Trustwave Global ECC P384 Certification Authority,O=Trustwave Holdings\, Inc.,L=Chic...
        "828b0eeff24654e8ff5841a29dd5d4e3ed30952ca43425a79283407208d39d16",
        # CN=COMODO RSA Certification Authority,O=COMODO CA Limited,L=Salford,ST=Greater Manchest...
        "82b5f84daf47a59c7ab521e4982aefa40a53406a3aec26039efa6b2e0e7244c1",
        # CN=QuoVadis Root CA 1 G3,O=QuoVadis Limited,C=BM
        "86a68f050034126a540d39db2c5f917ef66a94fb9619fa1ecd827cea46ba0cb0",
        # CN=GTS Root R1,O=Google Trust Services LLC,C=US
        "871a9194f4eed5b312ff40c84c1d524aed2f778bbff25f138cf81f680a7adc67",
        # CN=DigiCert Global Root G2,OU=www.digicert.com,O=DigiCert Inc,C=US
        "8bb593a93be1d0e8a822bb887c547890c3e706aad2dab76254f97fb36b82fc26",
        # CN=emSign ECC Root CA - G3,O=eMudhra Technologies Limited,OU=emSign PKI,C=IN
        "8d417db2dd8bf5e3084d1e3f196d583849d81bdd4c00c70b9d39369e96b8c782",
        # CN=T-TeleSec GlobalRoot Class 3,OU=T-Systems Trust Center,O=T-Systems Enterprise Servic...
        "8d767764b3cbda08929d072a22a561f4dcdd1bc57d3cbddc948c47d2b47f9122",
        # CN=Certigna Root CA,OU=0002 48146308100036,O=Dhimyotis,C=FR
        "8e8046ec4cac015a507ce0d2d0154a4b40e8e42b3165cfa546571435112d17e5",
        # CN=QuoVadis Root CA 2,O=QuoVadis Limited,C=BM
        "8fd112c3c8370f147d5ccd3a7d865eb8dd540783bac69fc60088e3743ff33378",
        # CN=TWCA Root Certification Authority,OU=Root CA,O=TAIWAN-CA,C=TW
        "92c46879626ef2cc1ecea50c72fb5e385844095f21cbf3b283cb82e6b9fc6a58",
        # CN=SwissSign Silver CA - G2,O=SwissSign AG,C=CH
        "9318226f8c83afe47f5f47c24f59ce12dba8c73b181bee6b2ea1f40a06bc1869",
        # CN=AffirmTrust Networking,O=AffirmTrust,C=US
        "94072ad3f58f70f93098e5a5f6c04c96c710bd849d83184919ae90eb890ae400",
        # CN=Izenpe.com,O=IZENPE S.A.,C=ES
        "952c2039c0243eb515dd73d83fc3643184874feb0862a9837731ed9b4742e17a",
        # CN=GTS Root R4,O=Google Trust Services LLC,C=US
        "9847e5653e5e9e847516e5cb818606aa7544a19be67fd7366d506988e8d84347",
        # CN=ANF Secure Server Root CA,OU=ANF CA Raiz,O=ANF Autoridad de Certificacion,C=ES,2.5.4...
        "9a52ff6a3cb6e353a08567e0dc9c395b300d60a22292ab8c18c1656b2983ae90",
        # CN=D-TRUST EV Root CA 1 2020,O=D-Trust GmbH,C=DE
        "9d37e4a989eab3882d116052fc8b58446702cb593726e4604c3795940c7103e2",
        # CN=DigiCert TLS ECC P384 Root G5,O=DigiCert\, Inc.,C=US
        "a02fafa192c8cb81cb1341554f9c05b71cca2a890b0d1298d683647c961efbdf",
        # CN=vTrus ECC Root CA,O=iTrusChina Co.\,Ltd.,C=CN
        "a246b822f96cfecc155156e5476957845492acf32187ec8a2ef12d89618d711d",
        # CN=SSL.com Root Certification Authority ECC,O=SSL Corporation,L=Houston,ST=Texas,C=US
        "a320f4d534d7be97c1ae8dd0499735bc895c323add2d388bfccf662c23d7f99a",
        # CN=Certum Trusted Network CA,OU=Certum Certification Authority,O=Unizeto Technologies S...
        "aa2630a7b617b04d0a294bab7a8caaa5016e6dbe604837a83a85719fab667eb5",
        # CN=sandboxing-egress-ca
        "ace5cac1cdbd51e7d7cbc85e9bb68928915ed135bc842a9d20f42e24ed370cbd",
        # CN=GlobalSign Root R46,O=GlobalSign nv-sa,C=BE
        "ae7f962cb9e6a7dbf7b833fb18fa9b71a89175df949c232b6a9ef7cb3df2bbfc",
        # CN=DigiCert Global Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US
        "aff988906dde12955d9bebbf928fdcc31cce328d5b9384f21c8941ca26e20391",
        # CN=Buypass Class 3 Root CA,O=Buypass AS-983163327,C=NO
        "b03d87b056d08cc9d4e675ef19ca83ab53532168a8258598be72e6d85c7dd7c1",
        # CN=Sectigo Public Server Authentication Root E46,O=Sectigo Limited,C=GB
        "b0b56335468561f5bb9fa12d801784a633a572705d34f32b643445dfa8b005d1",
        # CN=Microsoft RSA Root Certificate Authority 2017,O=Microsoft Corporation,C=US
        "b2f7298b52bf2c3cac4ddfe72de4d682ac58957595982f2b62301af597c699c5",
        # CN=E-Tugra Global Root CA RSA v3,OU=E-Tugra Trust Center,O=E-Tugra EBG A.S.,L=Ankara,C=TR
        "b3effbf46bcf66aedf71427e6bd60bf1a1878c7b72cab178703485fda6e3db38",
        # CN=emSign Root CA - C1,O=eMudhra Inc,OU=emSign PKI,C=US
        "b7408b4d2be0238ba37004dd34e276c6019bd2f24c9db7d4980f5f6c359a4bcc",
        # CN=DigiCert Global Root G3,OU=www.digicert.com,O=DigiCert Inc,C=US
        "b94c198300cec5c057ad0727b70bbe91816992256439a7b32f4598119dda9c97",
        # CN=SecureSign RootCA11,O=Japan Certification Services\, Inc.,C=JP
        "bb4128ec9620f2d2a49ce8e2c4e257aebad93a0f11c56b5fa4b00e23759fa39d",
        # CN=Hellenic Academic and Research Institutions ECC RootCA 2015,O=Hellenic Academic and ...
        "bb52086d0639e8db332775ac8f4e8435d92ceb00f4e24f28fc0eabe240772e80",
        # CN=AAA Certificate Services,O=Comodo CA Limited,L=Salford,ST=Greater Manchester,C=GB
        "bd153ed7b0434f6886b17bce8bbe84ed340c7132d702a8f4fa318f756ecbd6f3",
        # CN=E-Tugra Certification Authority,OU=E-Tugra Sertifikasyon Merkezi,O=E-Tu\u011fra EBG ...
        "c1ad1b1898ec395048df070bfa217e25c913bed8ca6b73de085528846a0103c1",
        # CN=Telia Root CA v2,O=Telia Finland Oyj,C=FI
        "c2b3c31a4a29850aa8f3cf472a1169ff71b416579f6a4482ec7744b83df988ac",
        # CN=TWCA Global Root CA,OU=Root CA,O=TAIWAN-CA,C=TW
        "c444b5b66ce5d71e1b5e40f27385c95cbfd24a05b56f70cac0992f0f50c3379c",
        # CN=TrustCor RootCert CA-2,OU=TrustCor Certificate Authority,O=TrustCor Systems S. de R....
        "c63d68c648a18b77641c427a669d61c9768a55f4fcd0322eac96c57700299cf1",
        # CN=USERTrust RSA Certification Authority,O=The USERTRUST Network,L=Jersey City,ST=New J...
        "c784333d20bcd742b9fdc3236f4e509b8937070e73067e254dd3bf9c45bf4dde",
        # CN=AffirmTrust Premium,O=AffirmTrust,C=US
        "c7f43b4cf5b71568294f822b53762605f6ddd15cadece739e9e2c3cba61e9d67",
        # CN=TunTrust Root CA,O=Agence Nationale de Certification Electronique,C=TN
        "c942262c0c7c0a95bb152b71c42556ddbe9a04fa8378373550d2b7ce27d952a3",
        # OU=certSIGN ROOT CA G2,O=CERTSIGN SA,C=RO
        "cbad7b1d384849df0946b7ee8e7f5f7ce3aed876fda7bc9d30d8b16f29ff2c53",
        # CN=GDCA TrustAUTH R5 ROOT,O=GUANG DONG CERTIFICATE AUTHORITY CO.\,LTD.,C=CN
        "ceb19411c65052c757f941eb826c96941e4d08d096c7db7e7ea3c4f8c13f1a13",
        # CN=SSL.com Root Certification Authority RSA,O=SSL Corporation,L=Houston,ST=Texas,C=US
        "d1c45377ebdcd618cd1651dc2e02c21d751e5aa9fcd1b3431ff6ecf6a31348fa",
        # CN=Security Communication RootCA3,O=SECOM Trust Systems CO.\,LTD.,C=JP
        "d3980aadd21638c70d74a4bb1f8ab5e11724e62ed408f9fa8d3d4d916900286b",
        # OU=certSIGN ROOT CA,O=certSIGN,C=RO
        "dbc1e3a15238a0483bcdb8fdec616e03e705a48e2a501157cadf3b9c7311c5e5",
        # CN=CFCA EV ROOT,O=China Financial Certification Authority,C=CN
        "dd5ed1c090f9f448061baa94a6bb11017544e9eefaa20cc714ce6c633f5dc629",
        # CN=Certum EC-384 CA,OU=Certum Certification Authority,O=Asseco Data Systems S.A.,C=PL
        "de7b6932e9c44582ce0de07abdab7eea90c75d6d2a07331df57bd5cb88553d13",
        # CN=GlobalSign Root E46,O=GlobalSign nv-sa,C=BE
        "e04a022ce32f4ccf2c7f6046287b828a32a909f5e751447f83fd2c71f6fd8173",
        # CN=vTrus Root CA,O=iTrusChina Co.\,Ltd.,C=CN
        "e06647e52610160c3e83c42d22e39aa8750c584d6c24afaed54a61164742000a",
        # C=DE,O=Atos,CN=Atos TrustedRoot 2011
        "e5ca37bc7b6c361979bc6b123ca9a1db019046d7ff5f57dfb854b19d10b0682f",
        # CN=COMODO ECC Certification Authority,O=COMODO CA Limited,L=Salford,ST=Greater Manchest...
        "e7ca91bbfbb18788057b3a8070446ea5291160194102f7dcc3b9848c63cb9cd5",
        # CN=TrustCor RootCert CA-1,OU=TrustCor Certificate Authority,O=TrustCor Systems S. de R....
        "ea87f462deefffbd7775aa2a4b7e0fcb91c22eee6df69ed90100ccc73b311476",
        # CN=emSign ECC Root CA - C3,O=eMudhra Inc,OU=emSign PKI,C=US
        "eabc185c4e82d942b1a5978ba3c0181487d6b3b9974e5c49f72f6d0bd9637150",
        # CN=D-TRUST Root Class 3 CA 2 2009,O=D-Trust GmbH,C=DE
        "eca0f181402ce7a8652b31b4d036df247e3a30b7f41a50d91ec4f90b006b43a1",
        # CN=DigiCert Assured ID Root G2,OU=www.digicert.com,O=DigiCert Inc,C=US
        "f1c6ba670cfc88e4df52973cae420f0a089dd474144fe5806c420064e1591229",
        # CN=QuoVadis Root CA 3 G3,O=QuoVadis Limited,C=BM
        "f3438e23b3ce532522facf307923f58fd18608e9ba7addc30e952b43c49616c3",
        # CN=NetLock Arany (Class Gold) F\u0151tan\xfas\xedtv\xe1ny,OU=Tan\xfas\xedtv\xe1nykiad\x...
        "f48badd7df6a06690d0ae31373b12855f8dedb14517f362a313101cc98cc6b35",
        # CN=Amazon Root CA 4,O=Amazon,C=US
        "f7ecded5c66047d28ed6466b543c40e0743abe81d109254dcf845d4c2c7853c5",
        # CN=Amazon Root CA 1,O=Amazon,C=US
        "fbe3018031f9586bcbf41727e417b7d1c45c2f47f93be372a17b96b50757d5a2",
        # CN=HARICA TLS ECC Root CA 2021,O=Hellenic Academic and Research Institutions CA,C=GR
        "fc784300ec8df4d3d1bad763835182918d52a9ff0238bdf695a1cd9bdb98321c",
        # CN=OISTE WISeKey Global Root GC CA,OU=OISTE Foundation Endorsed,O=WISeKey,C=CH
        "fd371bea9755ff60c8828c849b8e5215de532d61b009855fa0ad630d90eef82e",
        # CN=Entrust Root Certification Authority - EC1,OU=(c) 2012 Entrust\, Inc. - for authoriz...
        "fea2b7d645fba73d753c1ec9a7870c40e1f7b0c561e927b985bf711866e36f22",
        # CN=GLOBALTRUST 2020,O=e-commerce monitoring GmbH,C=AT
        "fee8af929175687f4638a3fc983db8ecd0e5e2a83e737f3fb77b4c22fcbac0a6",
        # CN=D-TRUST Root Class 3 CA 2 EV 2009,O=D-Trust GmbH,C=DE
        "ff342fb6c4c8bd30a4706f73489539f19e6e48cc05f46254654f6610dbc540e9",
    )
)
