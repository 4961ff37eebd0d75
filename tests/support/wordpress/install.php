<?php
// Installs WordPress into the private database and prints an application password for the
// user `office`. Run with WP_CONFIG_NAME naming /etc/wordpress/config-<name>.php.
$_SERVER['WORDPRESS_CONFIG'] = getenv('WP_CONFIG_NAME');
$_SERVER['HTTP_HOST'] = '127.0.0.1';
define('WP_INSTALLING', true);
require '/usr/share/wordpress/wp-load.php';
require ABSPATH . 'wp-admin/includes/upgrade.php';
wp_install('事務所ブログ', 'office', 'office@example.jp', true, '', wp_generate_password(24));
// Pretty permalinks: /wp-json/ is routed by a rewrite rule.
update_option('permalink_structure', '/%postname%/');
flush_rewrite_rules();
$user = get_user_by('login', 'office');
list($password, $item) = WP_Application_Passwords::create_new_application_password($user->ID, ['name' => 'tayori']);
echo $password, "\n";
